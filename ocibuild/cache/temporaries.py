"""Builds' temporary files, under their store, and removing those whose process is gone.

    ROOT/tmp/<pid>-<random>/                 one per process using the store: the
                                             solver's files, the sandbox's staging
                                             directory, the file-op server's socket
    ROOT/snapshots/steps/<pid>-<random>-<n>  step directories, named after that one
    ROOT/content/.tmp-*                      blobs being written
    ROOT/snapshots/layers/.tmp-p<pid>-*      layers being extracted

A process holds an exclusive flock on its directory for as long as it lives; the kernel
drops it when the process dies, however it dies. So a directory whose lock can be taken
belongs to a process that is gone, and so do the step directories named after it. A
blob writer holds a flock on its temporary file the same way (ocibuild.oci.layout).
Each process removes its own files when it exits; what a killed one left, the next
build (entering the store) or `cache prune` removes. A live process's files are locked,
so they are never taken for leftovers. Files named after their writer's pid
(ocibuild.atomic.writer_prefix: blobs, extracted layers) are leftovers as soon as that
process is gone, without the grace time an unlocked file otherwise gets.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ocibuild import store_paths
from ocibuild.atomic import TMP_PREFIX, new_dir, remove_tree, writer_of
from ocibuild.idspace.requests import Request, handler, request_type

# A temporary file nobody holds a lock on is taken for a dead writer's only once it is
# this old: a writer locks its file right after making it, and renames it soon after
# closing it (the lock goes with the close), so only those instants are unlocked.
UNLOCKED_GRACE_S = 10.0


@dataclass
class _Own:
    """This process's directory in one store, and the descriptor holding its lock."""

    path: Path
    fd: int
    pid: int


_own: dict[str, _Own] = {}  # store root -> this process's directory there
_own_lock = threading.Lock()
_current: Path | None = None  # the directory in the store most recently entered


def enter(root: Path) -> Path:
    """This process's temporary directory in the store at `root` (made now if need be),
    after removing what dead processes left there. Builds call it as they start; the
    sandbox's and file-op server's temporaries then go there too."""
    global _current
    path = process_dir(root)
    _current = path
    with contextlib.suppress(OSError):  # best effort: prune removes what is left
        remove_dead(root)
    return path


def process_dir(root: Path) -> Path:
    """This process's temporary directory in the store at `root` (made on first use,
    locked while the process lives, removed when it exits)."""
    key = os.path.abspath(root)  # other processes get its paths, whatever their cwd
    with _own_lock:
        own = _own.get(key)
        if own is None or own.pid != os.getpid():  # a forked child makes its own
            own = _own[key] = _make_own(Path(key))
            atexit.register(_remove_own, key, own)
        return own.path


def leave(root: Path) -> None:
    """Remove this process's directory in the store at `root` now: for a forked child
    that ends with os._exit, which runs no atexit handler."""
    key = os.path.abspath(root)
    with _own_lock:
        own = _own.get(key)
    if own is not None:
        _remove_own(key, own)


def current() -> Path | None:
    """The temporary directory of the store this process last entered, if any."""
    return _current


def make_dir(prefix: str, *, max_path: int | None = None) -> Path:
    """A new directory in current() (or in the system's temporary directory, before any
    store was entered or where its path would be longer than `max_path`)."""
    base = current()
    if base is not None and max_path is not None \
            and len(str(base)) + 1 + len(prefix) + 8 > max_path:
        base = None
    if base is not None and base.is_dir():
        return new_dir(base, prefix)
    import tempfile  # the system's temporary directory: rare

    return Path(tempfile.mkdtemp(prefix=prefix))


def step_dir_name(root: Path, unique: str) -> str:
    """The name of a new step directory: its owner's name first (see the module doc)."""
    return f"{process_dir(root).name}-{unique}"


def _make_own(root: Path) -> _Own:
    base = root / store_paths.TMP
    base.mkdir(mode=0o700, exist_ok=True)
    while True:
        path = base / f"{os.getpid()}-{os.urandom(4).hex()}"  # not secrets: it loads OpenSSL
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        # a sweeper may take it for a dead one between mkdir and flock: then try again
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:  # moved to the trash before we could open it
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return _Own(path, fd, os.getpid())
        os.close(fd)


def _remove_own(key: str, own: _Own) -> None:
    """At exit: this process's directory goes, its step directories to the trash."""
    if own.pid != os.getpid():
        return
    root = Path(key)
    with contextlib.suppress(OSError):
        _to_trash(root, [p for p in _entries(root / store_paths.STEPS)
                         if _owner_of_step(p.name) == own.path.name])
    remove_tree(own.path)
    os.close(own.fd)
    with _own_lock:
        if _own.get(key) is own:
            del _own[key]


# -- finding leftovers ----------------------------------------------------------------
def _entries(directory: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(directory)]
    except OSError:
        return []


def _owner_of_step(name: str) -> str | None:
    owner, sep, _ = name.rpartition("-")
    return owner if sep and "-" in owner else None


@contextlib.contextmanager
def _if_dead(path: Path) -> Iterator[bool]:
    """True (holding its lock for the block) when no live process holds `path`'s lock;
    False for what this process cannot open (never its own: someone else's)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        yield True
        return
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Leftovers:
    """What dead processes left: process directories, step directories, partial blobs
    (and, for a store nobody builds in, temporary directories of layer extraction and
    cache mounts)."""

    process_dirs: tuple[Path, ...] = ()
    step_dirs: tuple[Path, ...] = ()
    partial_files: tuple[Path, ...] = ()

    @property
    def paths(self) -> tuple[Path, ...]:
        return (*self.process_dirs, *self.step_dirs, *self.partial_files)


def all_temporaries(root: Path) -> list[Path]:
    """Every temporary file and directory in the store, a live process's or not."""
    found = [*_entries(root / store_paths.TMP), *_entries(root / store_paths.STEPS)]
    found += [p for p in _entries(root / store_paths.CONTENT) if p.name.startswith(TMP_PREFIX)]
    for sub in (store_paths.LAYERS, store_paths.CHAINS, store_paths.CACHE_MOUNTS):
        found += [p for p in _entries(root / sub) if p.name.startswith(TMP_PREFIX)]
    return found


def find_dead(root: Path, *, exclusive: bool) -> Leftovers:
    """What processes that are gone left in the store. `exclusive`: the caller holds the
    store exclusively (no build runs), so step directories of no known owner and
    temporary directories of extraction are leftovers too, and unlocked partial blobs
    need no grace time."""
    process_dirs = []
    alive: dict[str, bool] = {}
    for path in _entries(root / store_paths.TMP):
        with _if_dead(path) as dead:
            alive[path.name] = not dead
            if dead:
                process_dirs.append(path)

    def owner_gone(owner: str | None) -> bool:
        if owner is None:  # a step directory older than owners' names
            return exclusive
        if owner not in alive:  # a process that started after the listing above
            with _if_dead(root / store_paths.TMP / owner) as dead:
                alive[owner] = not dead
        return not alive[owner]

    step_dirs = [p for p in _entries(root / store_paths.STEPS)
                 if owner_gone(_owner_of_step(p.name))]
    partial = [p for p in _entries(root / store_paths.CONTENT)
               if p.name.startswith(TMP_PREFIX) and _dead_partial(p, exclusive)]
    for sub in (store_paths.LAYERS, store_paths.CHAINS, store_paths.CACHE_MOUNTS):
        partial += [p for p in _entries(root / sub) if p.name.startswith(TMP_PREFIX)
                    and (exclusive or _writer_gone(p.name))]
    return Leftovers(tuple(process_dirs), tuple(step_dirs), tuple(partial))


def _dead_partial(path: Path, exclusive: bool) -> bool:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if not exclusive and time.time() - st.st_mtime < UNLOCKED_GRACE_S \
            and not _writer_gone(path.name):
        return False
    if path.is_dir():
        return exclusive
    with _if_dead(path) as dead:
        return dead


def _writer_gone(name: str) -> bool:
    """The file's name carries its writer's pid (ocibuild.atomic.writer_prefix), and no
    such process is left. (A reused pid only keeps a leftover for prune.)"""
    pid = writer_of(name)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's process
        return False
    return False


# -- removing them --------------------------------------------------------------------
def remove_dead(root: Path) -> None:
    """Remove what dead processes left (while builds may run: only what is theirs).
    Directories go to the trash (a rename: instant, whatever ids own their files),
    which builds empty in the background and `cache prune` at once."""
    found = find_dead(root, exclusive=False)
    dirs = [p for p in found.partial_files if p.is_dir() and not p.is_symlink()]
    _to_trash(root, [*found.process_dirs, *found.step_dirs, *dirs])
    for path in found.partial_files:
        if path not in dirs:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def remove(paths: list[Path] | tuple[Path, ...]) -> None:
    """Remove leftovers now (files under subordinate ids too)."""
    from ocibuild.idspace.userns import remove_trees

    remove_trees(list(paths))


def _to_trash(root: Path, paths: list[Path]) -> None:
    if not paths:
        return
    trash = root / store_paths.TRASH
    trash.mkdir(exist_ok=True)
    if steps := [p for p in paths if p.parent.name == os.path.basename(store_paths.STEPS)]:
        from ocibuild.cache.lazy_blobs import keep_uppers_of_dead_steps

        keep_uppers_of_dead_steps(root, steps)
    for path in paths:
        # a process directory stays locked (ours) while it moves: its owner is gone
        locked = _if_dead(path) if path.parent.name == store_paths.TMP \
            else contextlib.nullcontext(True)
        with locked as dead:
            if not dead:
                continue
            try:
                os.rename(path, trash / path.name)
            except FileNotFoundError:
                pass
            except OSError:  # a name taken in the trash, another filesystem
                remove([path])


def size(paths: list[Path] | tuple[Path, ...]) -> int:
    """Bytes on disk of these files and trees (read under the sandbox mapping)."""
    if not paths:
        return 0
    from ocibuild.idspace import userns

    return int(userns.request(SizeOf(tuple(str(p) for p in paths))))


@request_type
class SizeOf(Request[int]):
    """Bytes on disk of files and trees `paths`."""

    stateless = True
    paths: tuple[str, ...]


@handler(SizeOf)
def size_in_userns(args: SizeOf) -> int:
    from ocibuild.idspace.userns import tree_size

    total = 0
    for name in args.paths:
        path = Path(name)
        with contextlib.suppress(OSError):
            total += path.lstat().st_blocks * 512
            if path.is_dir() and not path.is_symlink():
                total += tree_size(path)
    return total
