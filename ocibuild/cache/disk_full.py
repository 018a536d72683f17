"""The message for a full disk met while using the store: where it filled up, what the
store holds and the commands that show and free it."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from ocibuild import store_paths
from ocibuild.errors import DiskFullError, OcibuildError, is_disk_full


def disk_full_error(exc: BaseException, root: Path,
                    where: str | os.PathLike[str] | None = None) -> DiskFullError:
    """The message for a full disk met while using the store at `root` (`where`: the
    output that filled up, when it was not the store)."""
    from ocibuild.cache.units import human_size

    if type(exc).__module__ == "sqlite3":
        what = f"cannot write the cache database {root / store_paths.RECORDS_DB}"
    else:
        what = _plain_reason(exc.message if isinstance(exc, OcibuildError) else str(exc))
    if not is_disk_full(OcibuildError(what)):  # the reason is not in the text yet
        what += ": no space left on device"
    full = Path(where) if where is not None else root
    if str(full) not in what:
        what += f" in {full}"
    import shutil  # here: only a full disk needs it

    with contextlib.suppress(OSError):
        what += f"; {human_size(shutil.disk_usage(_existing(full)).free)} free there now"
    return DiskFullError(f"{what}; {store_hint(root, free=False)}")


def store_hint(root: Path, *, free: bool = True) -> str:
    """What the store holds (and what is free on its filesystem) and the commands that
    show and free it."""
    from ocibuild.cache.units import human_size

    now = ""
    if free:
        import shutil

        with contextlib.suppress(OSError):
            now = f" ({human_size(shutil.disk_usage(root).free)} free there now)"
    return (f"the store {root} holds {human_size(store_bytes(root))}{now}: "
            "`ocibuild cache du` shows what, `ocibuild cache prune` frees it")


def _plain_reason(text: str) -> str:
    """Python's "OSError: [Errno 28] No space left on device" as a person reads it."""
    for noise in ("OSError: ", "[Errno 28] ", "sqlite3.OperationalError: "):
        text = text.replace(noise, "")
    return text.replace("No space left on device", "no space left on device").replace(
        "database or disk is full", "no space left on device")


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def store_bytes(root: Path) -> int:
    """About what the store holds: its blobs, its database, the extracted layers its
    database counts and the cache mounts (read without writing anything: the disk may
    be full; what this user cannot read is left out)."""
    from ocibuild.idspace.userns import tree_size

    total = tree_size(root / store_paths.CACHE_MOUNTS)
    for directory in (root / store_paths.BLOBS / "sha256", root):
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and (
                        directory != root or entry.name.startswith(store_paths.RECORDS_DB)):
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
    db = root / store_paths.RECORDS_DB
    with contextlib.suppress(sqlite3.Error):
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        try:
            total += conn.execute("SELECT COALESCE(SUM(size), 0) FROM snapshots").fetchone()[0]
        finally:
            conn.close()
    return total

