"""Atomic file writes: a temporary file beside the destination, fsync, rename.

Readers see the old file or the whole new one, never a half-written one; an error or
an interrupt inside the block leaves the destination untouched and no temporary file.

New temporary files and directories are made here (`new_file`, `new_dir`), not with
`tempfile`, which loads `shutil` (with the compressors shutil loads) and `random`: ~2 ms
of every build, and ~3 ms of a command that writes nothing, such as a push the registry
already holds. `shutil` is imported only to remove a directory that is not empty.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

TYPE_CHECKING = False  # typing costs a registry command ~2 ms
if TYPE_CHECKING:
    from typing import IO, Any

TMP_PREFIX = ".tmp-"


def writer_prefix() -> str:
    """The prefix of a store's temporary file or directory that names the process writing
    it (`.tmp-p<pid>-`): once that process is gone, the next build knows the file for a
    leftover at once, whatever its age (ocibuild.cache.temporaries)."""
    return f"{TMP_PREFIX}p{os.getpid()}-"


def writer_of(name: str) -> int | None:
    """The pid a `writer_prefix()` name carries (None: a name without one)."""
    if not name.startswith(TMP_PREFIX + "p"):
        return None
    pid, sep, _ = name[len(TMP_PREFIX) + 1:].partition("-")
    return int(pid) if sep and pid.isdigit() else None


def writer_gone(pid: int) -> bool:
    """True when no process has this pid (one of another user's still counts as there)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


_RANDOM_BYTES = 4  # eight characters, as many as tempfile's (a socket's path is short)


def new_dir(parent: str | Path, prefix: str = "") -> Path:
    """A new empty directory (mode 0700) in `parent`: `prefix` and eight random
    characters, as tempfile.mkdtemp names it."""
    while True:
        path = os.path.join(parent, prefix + os.urandom(_RANDOM_BYTES).hex())
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return Path(path)


def new_file(parent: str | Path, prefix: str = "") -> tuple[int, str]:
    """A new empty file (mode 0600) in `parent`, named as new_dir names a directory and
    open for reading and writing: (descriptor, path), as tempfile.mkstemp returns."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        path = os.path.join(parent, prefix + os.urandom(_RANDOM_BYTES).hex())
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue


def remove_tree(path: str | Path) -> None:
    """`path` and everything under it, if it can; errors are ignored (as
    shutil.rmtree(path, ignore_errors=True)). A directory that holds only files and
    empty directories (a socket's, a fork server's mount points) goes without shutil."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError:  # a symbolic link, or not a directory: shutil says no, ignored
        fd = -1
    if fd >= 0:
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        os.rmdir(entry.name, dir_fd=fd)
                    else:
                        os.unlink(entry.name, dir_fd=fd)
            os.rmdir(path)
            return
        except OSError:  # deeper: shutil's careful walk
            pass
        finally:
            os.close(fd)
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def sweep_beside(dest: Path, remove: Callable[[Path], object] | None = None) -> None:
    """Remove the temporary entries that processes now gone left beside `dest` (a build
    killed while it wrote an output there); directories go through `remove` (default
    `shutil.rmtree`)."""
    if remove is None:
        import shutil

        remove = shutil.rmtree
    with contextlib.suppress(OSError):
        for entry in os.scandir(dest.parent):
            pid = writer_of(entry.name)
            if pid is None or pid == os.getpid() or not writer_gone(pid):
                continue
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    remove(Path(entry.path))
                else:
                    os.unlink(entry.path)


def work_dir_beside(dest: Path, label: str, remove: Callable[[Path], object]) -> Path:
    """A fresh work directory beside `dest`, named for this process (`.tmp-p<pid>-`),
    once what dead processes left there is gone (`sweep_beside`)."""
    sweep_beside(dest, remove)
    return new_dir(dest.parent, writer_prefix() + label)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(dest: Path, *, mode: int = 0o644, text: bool = False) -> Iterator[IO[Any]]:
    """Yield a file to write; on a clean exit it replaces `dest` with file mode `mode`."""
    fd, tmp = new_file(dest.parent, writer_prefix())
    try:
        with os.fdopen(fd, "w" if text else "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(dest.parent)


def atomic_write_bytes(dest: Path, data: bytes, mode: int = 0o644) -> None:
    with atomic_file(dest, mode=mode) as f:
        f.write(data)


def replace_unsynced(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` through a temporary file beside it, renamed over it:
    readers see the old file or all of the new one. No fsync: for files whose loss costs
    only time (a cache, a rebuild memo). An OSError leaves no temporary file behind."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        with open(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
