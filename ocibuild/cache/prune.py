"""`cache du` and `cache prune`: what the cache holds, and removing what is not needed.

Kinds of items: cache records (sized by their layer blob), extracted layer snapshots,
native chain snapshots, cache mounts, the trash (finished builds' step directories,
deleted later: always reclaimable), temporary files (ocibuild.cache.temporaries:
those of running builds, and what killed ones left, which prune removes) and git
sources' repositories and context trees (fetched again when needed). Without
--all, whatever a tagged image uses is kept (records of its layers, its snapshots);
blobs are removed only when neither a tagged image nor a remaining record refers to
them. Prune holds the store exclusively,
so it never runs while a build holds the store lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild import store_paths
from ocibuild.cache import lazy_blobs, temporaries
from ocibuild.errors import OcibuildError
from ocibuild.idspace.requests import Request, handler, request_type
from ocibuild.oci import digest as _digest
from ocibuild.oci.manifest import Index, Manifest, parse_manifest_or_index

if TYPE_CHECKING:
    from ocibuild.cache.store import Store

RECORD, LAYER, CHAIN, MOUNT, TRASH = "record", "snapshot", "chain", "cache-mount", "trash"
TEMPORARY = "temporary"
GIT = "git"  # a git source's cache repository or a git context's checked-out tree


@dataclass(frozen=True)
class UsageItem:
    """One thing `cache du` lists and `cache prune` may remove."""

    kind: str
    id: str
    size: int
    last_used: float
    description: str
    in_use: bool  # used by a tagged image: kept by prune without --all


@dataclass
class PruneReport:
    """What a prune removed."""

    removed: list[UsageItem] = field(default_factory=list)
    blobs_removed: int = 0
    blob_bytes: int = 0

    @property
    def reclaimed(self) -> int:
        return sum(i.size for i in self.removed if i.kind != RECORD) + self.blob_bytes


@dataclass(frozen=True)
class _Tagged:
    """What the named images still use (never pruned)."""

    blobs: frozenset[str]
    diff_ids: frozenset[str]
    chains: frozenset[str]


def _tagged(store: Store) -> _Tagged:
    blobs: set[str] = set()
    diff_ids: set[str] = set()
    chains: set[str] = set()
    pending = list(store.images().values())
    while pending:
        desc = pending.pop()
        if desc.digest in blobs or not store.layout.has_blob(desc.digest):
            continue
        blobs.add(desc.digest)
        try:
            doc = parse_manifest_or_index(store.layout.read_blob(desc.digest), desc.media_type)
        except OcibuildError:
            continue
        if isinstance(doc, Index):
            pending.extend(doc.manifests)
            continue
        assert isinstance(doc, Manifest)
        blobs.add(doc.config.digest)
        blobs.update(layer.digest for layer in doc.layers)
        try:
            ids = json.loads(store.layout.read_blob(doc.config.digest))["rootfs"]["diff_ids"]
        except (OcibuildError, KeyError, ValueError, TypeError):
            ids = []
        diff_ids.update(ids)
        chains.update(_digest.chain_id(ids[:i + 1]) for i in range(len(ids)))
    return _Tagged(frozenset(blobs), frozenset(diff_ids), frozenset(chains))


def _dir_size(path: Path) -> int:
    from ocibuild.idspace import userns

    return int(userns.request(TreeSize(str(path))))


@request_type
class TreeSize(Request[int]):
    """Bytes on disk of the tree at `path`."""

    stateless = True
    path: str


@handler(TreeSize)
def dir_size_in_userns(args: TreeSize) -> int:
    from ocibuild.idspace.userns import tree_size

    return tree_size(Path(args.path))


def usage(store: Store) -> list[UsageItem]:
    tagged = _tagged(store)
    items: list[UsageItem] = []
    for row in store.db.records():
        rec = row.record
        size = rec.layer.size if rec.layer else 0
        in_use = rec.layer is not None and rec.layer.digest in tagged.blobs
        items.append(UsageItem(RECORD, rec.key, size, row.last_used, rec.description, in_use))
    for snap in store.db.snapshots():
        if snap.diff_id.startswith("chain:"):
            chain = snap.diff_id.removeprefix("chain:")
            items.append(UsageItem(CHAIN, chain, snap.size, snap.last_used,
                                   "native snapshot", chain in tagged.chains))
        else:
            items.append(UsageItem(LAYER, snap.diff_id, snap.size, snap.last_used,
                                   "extracted layer", snap.diff_id in tagged.diff_ids))
    for mount in store.db.mounts():
        path = store.mounts_dir / mount.dir
        size = _dir_size(path) if path.exists() else 0
        items.append(UsageItem(MOUNT, mount.dir, size, mount.last_used,
                               f"cache mount {mount.id}", False))
    trash = _trash_item(store)
    if trash is not None:
        items.append(trash)
    temporary = _temporary_item(temporaries.all_temporaries(store.root))
    if temporary is not None:
        items.append(temporary)
    items += _git_items(store)
    return items


def _git_entries(store: Store) -> list[tuple[str, Path, str]]:
    """(id, path, description) of each git repository and context tree in the store."""
    from ocibuild.sources.git import GIT_DIR

    base = store.root / GIT_DIR
    found: list[tuple[str, Path, str]] = []
    for parent, prefix, what in ((base, "", "git source repository"),
                                 (base / "trees", "trees/", "git context tree")):
        with contextlib.suppress(OSError):
            for entry in sorted(os.scandir(parent), key=lambda e: e.name):
                if entry.is_dir(follow_symlinks=False) and entry.name != "trees":
                    found.append((prefix + entry.name, Path(entry.path), what))
    return found


def _git_items(store: Store) -> list[UsageItem]:
    items = []
    for ident, path, what in _git_entries(store):
        last = path.lstat().st_mtime
        items.append(UsageItem(GIT, ident, _dir_size(path), last, what, False))
    return items


def _temporary_item(paths: list[Path] | tuple[Path, ...]) -> UsageItem | None:
    """Temporary files as one item, or None when there are none."""
    if not paths:
        return None
    last = 0.0
    for path in paths:
        with contextlib.suppress(OSError):
            last = max(last, path.lstat().st_mtime)
    return UsageItem(TEMPORARY, "temporary", temporaries.size(paths), last,
                     f"temporary files of running or killed builds ({len(paths)} entries)",
                     False)


def _trash_item(store: Store) -> UsageItem | None:
    """The trash as one item, or None when it is empty."""
    trash = store.root / store_paths.TRASH
    try:
        entries = list(os.scandir(trash))
    except OSError:
        return None
    if not entries:
        return None
    last = max(e.stat(follow_symlinks=False).st_mtime for e in entries)
    return UsageItem(TRASH, "trash", _dir_size(trash), last,
                     f"step directories of {len(entries)} finished steps, not yet deleted",
                     False)


def _item_path(store: Store, item: UsageItem) -> Path | None:
    if item.kind == LAYER:
        return store.snapshots_dir / "layers" / _digest.hex_of(item.id)
    if item.kind == CHAIN:
        return store.snapshots_dir / "chains" / _digest.hex_of(item.id)
    if item.kind == MOUNT:
        return store.mounts_dir / item.id
    if item.kind == GIT:
        from ocibuild.sources.git import GIT_DIR

        return store.root / GIT_DIR / item.id
    return None


def prune(store: Store, *, all: bool = False, keep_storage: int | None = None,
          until: float | None = None) -> PruneReport:
    """Remove cache items (see the module doc); `until`: only those unused for that many
    seconds; `keep_storage`: stop once what remains is at most that many bytes."""
    from ocibuild.idspace.userns import remove_tree

    report = PruneReport()
    with store.exclusive():
        trash = _trash_item(store)
        leftovers = temporaries.find_dead(store.root, exclusive=True).paths
        temporary = _temporary_item(leftovers)
        temporaries.remove(leftovers)
        _empty_trash(store)
        report.removed += [i for i in (trash, temporary) if i is not None]
        items = usage(store)
        now = time.time()
        candidates = [i for i in items if i.kind not in (TRASH, TEMPORARY)
                      and (all or not i.in_use)
                      and (until is None or now - i.last_used >= until)]
        candidates.sort(key=lambda i: i.last_used)
        total = sum(i.size for i in items)
        lazy = lazy_blobs.markers(store.root)
        referenced = _referenced_blobs(store) if lazy else set()
        for item in candidates:
            if keep_storage is not None and total <= keep_storage:
                break
            path = _item_path(store, item)
            if item.kind == LAYER and lazy:
                _write_kept_blobs(store, item.id, lazy, referenced)
            if path is not None:
                remove_tree(path)
            if item.kind == RECORD:
                store.db.delete_records([item.id])
            elif item.kind == MOUNT:
                store.db.delete_mount(item.id)
                (store.mounts_dir / f"{item.id}.lock").unlink(missing_ok=True)
            elif item.kind == GIT:
                assert path is not None
                path.with_name(path.name + ".lock").unlink(missing_ok=True)
            else:
                store.db.delete_snapshot(item.id if item.kind == LAYER else f"chain:{item.id}")
            total -= item.size
            report.removed.append(item)
        _remove_unreferenced_blobs(store, report)
        # rebuild memos are cheap to make again; one whose records went is useless
        shutil.rmtree(store.root / store_paths.REBUILDS, ignore_errors=True)
    return report


def _referenced_blobs(store: Store) -> set[str]:
    """The blobs the named images and the cache records refer to."""
    referenced = set(_tagged(store).blobs)
    referenced.update(row.record.layer.digest for row in store.db.records()
                      if row.record.layer is not None)
    return referenced


def _write_kept_blobs(store: Store, diff_id: str, lazy: dict[str, lazy_blobs.Marker],
                      referenced: set[str]) -> None:
    """Before a layer's directory goes: the blobs the store would have made from it,
    written now where an image or a record still refers to them (`referenced`; the
    others forgotten)."""
    for digest in [d for d, marker in lazy.items() if marker.diff_id == diff_id]:
        if digest in referenced:
            store.layout.ensure_blob(digest)
        lazy_blobs.drop(store.root, digest)
        del lazy[digest]


def _empty_trash(store: Store) -> None:
    temporaries.remove(list((store.root / store_paths.TRASH).glob("*")))
    # where context directories were last copied: in the trash, gone now
    shutil.rmtree(store.root / store_paths.COPIES, ignore_errors=True)


def _remove_unreferenced_blobs(store: Store, report: PruneReport) -> None:
    keep = _referenced_blobs(store)
    for digest in lazy_blobs.markers(store.root):
        if digest not in keep:  # its layer's directory is an ordinary snapshot now
            lazy_blobs.drop(store.root, digest)
    for digest in list(store.layout.blobs()):
        if digest not in keep:
            path = store.layout.blob_path(digest)
            try:
                size = path.stat().st_size
                os.unlink(path)
            except FileNotFoundError:
                continue
            report.blobs_removed += 1
            report.blob_bytes += size
