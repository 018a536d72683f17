"""Cache mounts (`RUN --mount=type=cache`): a persistent directory per id.

Directories are ROOT/cache-mounts/<hash of id>-<n>; each has a lock file beside it.
shared holds the lock shared, locked holds it exclusive (waiting), private takes the
first directory nobody uses (creating a new one when all are busy).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ocibuild.atomic import writer_prefix
from ocibuild.errors import OcibuildError
from ocibuild.oci.digest import hex_of_bytes

if TYPE_CHECKING:
    from ocibuild.cache.records import RecordDB

SHARING_MODES = ("shared", "private", "locked")


def mount_dir_name(mount_id: str, n: int = 0) -> str:
    return f"{hex_of_bytes(mount_id.encode())[:32]}-{n}"


@contextlib.contextmanager
def _flock(path: Path, flags: int) -> Iterator[bool]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


class MountStore(Protocol):
    """The part of the store cache mounts use (a Store is one; this module is below it)."""

    mounts_dir: Path
    db: RecordDB


Seed = Callable[[Path], None]  # makes a new cache directory (at the path given) as a copy


def _ensure_dir(store: MountStore, path: Path, mode: int, uid: int, gid: int,
                seed: Seed | None = None) -> None:
    if path.is_dir():
        return
    with _flock(store.mounts_dir / ".create.lock", fcntl.LOCK_EX):
        if not path.is_dir():
            _create_dir(path, mode, uid, gid, seed)


def _create_dir(path: Path, mode: int, uid: int, gid: int, seed: Seed | None = None) -> None:
    # named after this process: should it die here, the next build removes the part
    tmp = path.with_name(f"{writer_prefix()}{path.name}")
    try:
        if seed is not None:
            seed(tmp)
        else:
            tmp.mkdir()
            os.chmod(tmp, mode)
            if uid or gid:
                from ocibuild.idspace.userns import chown_as_mapped

                chown_as_mapped(tmp, uid, gid)
        os.rename(tmp, path)
    except BaseException:
        if seed is not None and os.path.lexists(tmp):  # a part copy, owned by mapped ids
            from ocibuild.idspace import userns

            with contextlib.suppress(Exception):
                userns.remove_trees([tmp])
        with contextlib.suppress(OSError):
            tmp.rmdir()
        raise


@contextlib.contextmanager
def open_cache_mount(store: MountStore, mount_id: str, sharing: str, *, mode: int = 0o755,
                     uid: int = 0, gid: int = 0, seed: Seed | None = None) -> Iterator[Path]:
    """The directory of cache mount `mount_id`, made by `seed` (a copy of a stage's
    directory) or empty with mode/uid/gid when it does not exist yet."""
    if sharing not in SHARING_MODES:
        raise OcibuildError(
            f"cache mount {mount_id!r}: unknown sharing {sharing!r} "
            f"(use {', '.join(SHARING_MODES)})"
        )
    n = 0
    while True:
        name = mount_dir_name(mount_id, n)
        flags = {"shared": fcntl.LOCK_SH, "locked": fcntl.LOCK_EX,
                 "private": fcntl.LOCK_EX | fcntl.LOCK_NB}[sharing]
        with _flock(store.mounts_dir / f"{name}.lock", flags) as got:
            if got:
                path = store.mounts_dir / name
                _ensure_dir(store, path, mode, uid, gid, seed)
                store.db.touch_mount(name, mount_id)
                yield path
                return
        n += 1
