"""`ocibuild cache check [--repair]`: is every part of the store what it claims to be?

In this order, so that what one repair removes the next checks see gone:
  1. records.db: SQLite's integrity check;
  2. every blob against its digest (streamed);
  3. every cache record's layer blob (present, of the recorded size);
  4. every snapshot and cache-mount row's directory, and layer directories no row tracks;
  5. the image index: each name's manifest, and a manifest's config and layers, present
     (the platforms an index lists but nobody pulled may be absent);
  6. leftovers of processes that are gone (ocibuild.cache.temporaries).

--repair removes what is broken and never what is good: a corrupt blob, a record or row
whose blob or directory is gone, a name whose image is incomplete (its blobs stay, for
prune), leftovers and the trash; a layer directory no row tracks is registered instead;
a damaged records.db is rebuilt from the rows SQLite can still read. A build afterwards
runs again what it can no longer find. The store is held exclusively meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild import store_paths
from ocibuild.cache import temporaries
from ocibuild.errors import OcibuildError
from ocibuild.oci import digest as _digest
from ocibuild.oci.manifest import Index, Manifest, parse_manifest_or_index

if TYPE_CHECKING:
    from ocibuild.cache.store import Store

_CHUNK = 1 << 20
_TABLES = ("records", "snapshots", "cache_mounts")


@dataclass
class Problem:
    """One thing wrong: what, which (a digest, a path, a name), why; and, once --repair
    dealt with it, what it did."""

    what: str
    subject: str
    why: str
    repaired: str = ""

    def line(self) -> str:
        text = f"{self.what}: {self.subject}: {self.why}"
        return f"{text} ({self.repaired})" if self.repaired else text


@dataclass
class CheckReport:
    """What `cache check` found: the problems, and how many of each thing it looked at."""
    problems: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # "blobs" -> how many, ...
    trash_entries: int = 0  # finished steps' directories not yet deleted (not a problem)

    @property
    def unrepaired(self) -> list[Problem]:
        return [p for p in self.problems if not p.repaired]


class _Checker:
    def __init__(self, store: Store, repair: bool) -> None:
        self.store = store
        self.repair = repair
        self.report = CheckReport()
        self.corrupt: set[str] = set()  # blobs whose content does not match their digest
        self.database_readable = True

    def usable(self, digest: str) -> bool:
        return digest not in self.corrupt and self.store.layout.has_blob(digest)

    def found(self, what: str, subject: str, why: str,
              fix: Callable[[], str] | None = None) -> None:
        problem = Problem(what, subject, why)
        if self.repair and fix is not None:
            try:
                problem.repaired = fix()
            except (OSError, OcibuildError, sqlite3.Error) as exc:
                problem.why += f"; repair failed: {exc}"
        self.report.problems.append(problem)

    # -- 1. the database ----------------------------------------------------------------
    def database(self) -> None:
        path = self.store.root / store_paths.RECORDS_DB
        try:
            rows = self.store.db._conn().execute("PRAGMA integrity_check").fetchall()
            messages = [r[0] for r in rows if r[0] != "ok"]
        except sqlite3.DatabaseError as exc:
            messages = [str(exc)]
        if messages:
            self.found("damaged database", str(path), "; ".join(messages[:3]),
                       self._rebuild_database)
            self.database_readable = self.report.problems[-1].repaired != ""

    def _rebuild_database(self) -> str:
        self.store.db.close()
        return rebuild_database(self.store.root / store_paths.RECORDS_DB)

    # -- 2. blobs -----------------------------------------------------------------------
    def blobs(self) -> None:
        layout = self.store.layout
        count = 0
        for digest in list(layout.blobs()):
            count += 1
            path = layout.blob_path(digest)
            try:
                actual = _sha256_of(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                self.found("unreadable blob", digest, f"{path}: {exc.strerror}")
                continue
            if actual != digest:
                self.corrupt.add(digest)
                self.found("corrupt blob", digest, f"its content has digest {actual}",
                           lambda p=path: _unlink(p, "removed"))  # type: ignore[misc]
        self.report.checked["blob"] = count

    # -- 3. records ---------------------------------------------------------------------
    def records(self) -> None:
        layout = self.store.layout
        rows = self.store.db.records()
        for row in rows:
            rec = row.record
            if rec.layer is None:
                continue
            path = layout.blob_path(rec.layer.digest)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                if layout.has_blob(rec.layer.digest):  # kept as a directory till asked
                    continue
                why = f"its layer blob {rec.layer.digest} is missing"
            else:
                if rec.layer.digest in self.corrupt:
                    why = f"its layer blob {rec.layer.digest} is corrupt"
                elif size == rec.layer.size:
                    continue
                else:
                    why = (f"its layer blob {rec.layer.digest} has {size} bytes, "
                           f"not {rec.layer.size}")
            self.found("broken record", f"{rec.key[:25]} {rec.description}", why,
                       lambda k=rec.key: self._drop_record(k))  # type: ignore[misc]
        self.report.checked["record"] = len(rows)

    def _drop_record(self, key: str) -> str:
        self.store.db.delete_records([key])
        return "record dropped: the step runs again"

    # -- 4. snapshot and cache-mount directories -----------------------------------------
    def directories(self) -> None:
        db = self.store.db
        tracked: set[Path] = set()
        rows = db.snapshots()
        for snap in rows:
            path = _snapshot_dir(self.store, snap.diff_id)
            tracked.add(path)
            if not path.is_dir():
                kind = "native snapshot" if snap.diff_id.startswith("chain:") \
                    else "extracted layer"
                self.found("missing directory", str(path),
                           f"the {kind} {snap.diff_id} is recorded but its directory is gone",
                           lambda d=snap.diff_id: self._drop_snapshot(d))  # type: ignore[misc]
        for prefix, sub in (("", store_paths.LAYERS), ("chain:", store_paths.CHAINS)):
            for path in _listing(self.store.root / sub):
                if path in tracked or path.name.startswith(".") or not path.is_dir():
                    continue
                diff_id = f"{prefix}{_digest.ALGORITHM}:{path.name}"
                if not _digest.is_digest(diff_id.removeprefix("chain:")):
                    continue
                self.found("untracked directory", str(path),
                           "no row records it, so cache du and prune cannot see it",
                           lambda d=diff_id, p=path: self._track(d, p))  # type: ignore[misc]
        for mount in db.mounts():
            path = self.store.mounts_dir / mount.dir
            if not path.is_dir():
                self.found("missing directory", str(path),
                           f"cache mount {mount.id} is recorded but its directory is gone",
                           lambda d=mount.dir: self._drop_mount(d))  # type: ignore[misc]
        self.report.checked["snapshot"] = len(rows)

    def _drop_snapshot(self, diff_id: str) -> str:
        self.store.db.delete_snapshot(diff_id)
        return "row dropped: made again when needed"

    def _drop_mount(self, name: str) -> str:
        self.store.db.delete_mount(name)
        return "row dropped"

    def _track(self, diff_id: str, path: Path) -> str:
        self.store.db.touch_snapshot(diff_id, temporaries.size([path]))
        return "recorded"

    # -- 5. the image index ----------------------------------------------------------------
    def images(self) -> None:
        try:
            images = self.store.images()
        except (OcibuildError, ValueError) as exc:
            self.found("unreadable index", str(self.store.root / store_paths.INDEX), str(exc))
            return
        for name, desc in sorted(images.items()):
            why = self._incomplete(desc.digest, desc.media_type)
            if why:
                self.found("incomplete image", name, why,
                           lambda n=name: self._untag(n))  # type: ignore[misc]
        self.report.checked["image"] = len(images)

    def _incomplete(self, digest: str, media_type: str, top: bool = True) -> str:
        """Why the image `digest` is unusable ("" when it is complete)."""
        layout = self.store.layout
        if not self.usable(digest):
            return f"its {'manifest' if top else 'platform manifest'} {digest} is missing"
        try:
            doc = parse_manifest_or_index(layout.read_blob(digest), media_type)
        except (OcibuildError, ValueError) as exc:
            return f"{digest} is not a manifest: {exc}"
        if isinstance(doc, Index):
            for child in doc.manifests:  # platforms nobody pulled are absent: fine
                if layout.has_blob(child.digest):
                    why = self._incomplete(child.digest, child.media_type, top=False)
                    if why:
                        return why
            return ""
        assert isinstance(doc, Manifest)
        for blob in (doc.config, *doc.layers):
            if not self.usable(blob.digest):
                what = "config" if blob is doc.config else "layer"
                return f"manifest {digest}: its {what} {blob.digest} is missing"
        return ""

    def _untag(self, name: str) -> str:
        self.store.layout.untag(name)
        return "name removed: pull or build it again"

    # -- 6. leftovers ------------------------------------------------------------------------
    def leftovers(self) -> None:
        found = temporaries.find_dead(self.store.root, exclusive=True)
        for path in found.paths:
            self.found("leftover", str(path), "a temporary file of a process that is gone",
                       lambda p=path: _remove(p))  # type: ignore[misc]
        trash = _listing(self.store.root / store_paths.TRASH)
        self.report.trash_entries = len(trash)
        if self.repair and trash:
            temporaries.remove(trash)


def check_root(root: Path, *, repair: bool = False) -> CheckReport:
    """check() of the store at `root`, even when its database cannot be opened at all
    (then, with `repair`, it is rebuilt first)."""
    from ocibuild.cache.store import DamagedDatabaseError, Store, exclusive_lock

    try:
        return check(Store.open(root), repair=repair)
    except DamagedDatabaseError as exc:
        problem = Problem("damaged database", str(exc.path), exc.reason)
        if not repair:
            return CheckReport([problem])
        with exclusive_lock(Path(root)):
            problem.repaired = rebuild_database(exc.path)
    report = check(Store.open(root), repair=True)
    report.problems.insert(0, problem)
    return report


def check(store: Store, *, repair: bool = False) -> CheckReport:
    """Check the store (see the module doc); with `repair`, fix what is broken."""
    with store.exclusive():
        checker = _Checker(store, repair)
        checker.database()
        checker.blobs()
        if checker.database_readable:
            checker.records()
            checker.directories()
        checker.images()
        checker.leftovers()
        if repair and any(p.repaired for p in checker.report.problems):
            # a rebuild memo may name what is gone; they are cheap to make again
            shutil.rmtree(store.root / store_paths.REBUILDS, ignore_errors=True)
    return checker.report


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return f"{_digest.ALGORITHM}:{h.hexdigest()}"


def _snapshot_dir(store: Store, diff_id: str) -> Path:
    if diff_id.startswith("chain:"):
        return store.root / store_paths.CHAINS / _digest.hex_of(diff_id.removeprefix("chain:"))
    return store.root / store_paths.LAYERS / _digest.hex_of(diff_id)


def _listing(directory: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(directory))
    except OSError:
        return []


def _unlink(path: Path, done: str) -> str:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return done


def _remove(path: Path) -> str:
    temporaries.remove([path])
    return "removed"


def rebuild_database(path: Path) -> str:
    """Replace the damaged records.db at `path` (nobody has it open) with a new one
    holding every row SQLite can still read from it (what it cannot read is cache:
    those steps run again)."""
    from ocibuild.cache.records import RecordDB

    new = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        new.unlink()
    fresh = RecordDB(new)
    saved = 0
    try:
        src = sqlite3.connect(path)
        try:
            for table in _TABLES:
                saved += _copy_rows(src, fresh._conn(), table)
        finally:
            src.close()
    except sqlite3.DatabaseError:
        pass  # not a database at all: nothing to save
    finally:
        fresh.close()
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
    os.replace(new, path)
    return f"rebuilt with the {saved} rows still readable"


def _copy_rows(src: sqlite3.Connection, dst: sqlite3.Connection, table: str) -> int:
    """Copy the rows of `table` that can be read, in rowid order, stepping over a
    damaged stretch by seeking ever further past the last row read."""
    copied, after, skip = 0, 0, 0
    while skip < 1 << 32:
        try:
            rows = src.execute(f"SELECT rowid, * FROM {table} WHERE rowid > ? "  # noqa: S608
                               "ORDER BY rowid", (after + skip,))
            for rowid, *row in rows:
                after, skip = rowid, 0
                marks = ", ".join("?" * len(row))
                dst.execute(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", row)  # noqa: S608
                copied += 1
            return copied
        except sqlite3.DatabaseError:
            skip = skip * 2 or 1
    return copied


def _plural(n: int, what: str) -> str:
    return f"{n} {what if n == 1 else what + 's'}"


def summary(report: CheckReport) -> str:
    counts = ", ".join(_plural(n, what) for what, n in report.checked.items())
    if not report.problems:
        return f"store is clean ({counts} checked)"
    if not counts:
        return f"{_plural(len(report.problems), 'problem')}"
    repaired = len(report.problems) - len(report.unrepaired)
    text = f"{_plural(len(report.problems), 'problem')} ({counts} checked)"
    return f"{text}, {repaired} repaired" if repaired else text

