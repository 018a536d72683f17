"""Where the last copy of each context directory went, so that the next COPY of it can
hard link the files that have not changed instead of copying their bytes again.

A COPY of a directory of the context is written straight into the step's overlay
upper directory (solver.fileop._upper_dir). With the overlay
snapshotter nothing writes to an upper directory once its step is done: later steps
stack it as a read-only lower directory, and a finished build moves it into the trash,
which only ever deletes it. (A COPY that also copies here-documents writes them into
the same upper directory afterwards: the solver does not let it be recorded. A record
is written once its copy is complete.) Its files are therefore what the copy wrote,
and a file of the context that is as it was then has the same bytes, owner and mode
as its copy there. A new copy can link that file instead of writing it: for bench/'s bigctx (20,000
files, 280 MB) that is one link and one lstat per file instead of an open, a create, a
sendfile, an fstat, a utime and two closes, and no data written.

"As it was then" is decided from the source file's lstat, with a stricter test than
BuildKit's own context transfer (which reuses the files it kept from the last build
when their size, mode and mtime agree): the copy there must have the source's size,
mtime, mode (after --chmod) and owner (after --chown), and the source's ctime must be
older than the moment the last copy started, less CLOCK_SLACK_NS. Any write, chmod,
chown, rename or utime of the source since sets its ctime to a later time. The slack
covers the kernel taking ctime from a clock that may lag the one read here by a tick.

Each record is a small file `snapshots/copies/<key>.json`, the key a hash of the
context directory's path and the directory copied. A record is only a hint: a step
directory that is gone (the trash emptied, `cache prune`) or a file not as required
falls back to copying. An upper directory that became its layer's directory (a build
that wrote no blobs, cache.lazy_blobs) is found through the name its step directory
keeps; nothing writes to a layer's directory either.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ocibuild import store_paths

CLOCK_SLACK_NS = 1_000_000_000


@dataclass(frozen=True)
class LastCopy:
    """A directory holding the last copy (`fd`, open), and the time before which a source
    file must have last changed for its copy there to be used (ns since the epoch)."""

    fd: int
    before_ns: int

    def close(self) -> None:
        os.close(self.fd)


def _record_path(store_root: Path, source_dir: str, rel: str) -> Path:
    key = hashlib.sha256(f"{source_dir}\0{rel}".encode("utf-8", "surrogateescape"))
    return store_root / store_paths.COPIES / f"{key.hexdigest()}.json"


def remember(store_root: Path, source_dir: str, rel: str, upper: Path, dest: Path,
             started_ns: int) -> None:
    """Record that directory `rel` of `source_dir` was copied, starting at `started_ns`,
    to `dest` inside the step's upper directory `upper` (STEPS/NAME/upper)."""
    record = {"step": upper.parent.name, "dest": os.path.relpath(dest, upper),
              "started_ns": started_ns}
    path = _record_path(store_root, source_dir, rel)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def find(store_root: Path, source_dir: str, rel: str) -> LastCopy | None:
    """The last copy of directory `rel` of `source_dir`, opened, if it is still there."""
    try:
        record = json.loads(_record_path(store_root, source_dir, rel).read_text())
        step, dest, started = record["step"], record["dest"], int(record["started_ns"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(step, str) or not isinstance(dest, str) or "/" in step \
            or step in ("", ".", ".."):
        return None
    for step_dir in _step_dirs(store_root, step):
        fd = _open_beneath(_upper(store_root, step_dir), dest)
        if fd is not None:
            return LastCopy(fd, started - CLOCK_SLACK_NS)
    return None


def _upper(store_root: Path, step_dir: Path) -> Path:
    """The step's upper directory, or the layer directory it became (overlay.keep_upper
    leaves the layer's name in the step directory)."""
    try:
        name = (step_dir / store_paths.STEP_LAYER).read_text()
    except OSError:
        return step_dir / "upper"
    if len(name) != 64 or not all(c in "0123456789abcdef" for c in name):
        return step_dir / "upper"
    return store_root / store_paths.LAYERS / name


def _step_dirs(store_root: Path, name: str) -> list[Path]:
    """Where step directory `name` may be: in use, or in the trash (where it is renamed
    NAME.BYTES once sized: trash.entry_size)."""
    trash = store_root / store_paths.TRASH
    found = [store_root / store_paths.STEPS / name, trash / name]
    with contextlib.suppress(OSError), os.scandir(trash) as entries:
        found += [Path(e.path) for e in entries if e.name.startswith(f"{name}.")]
    return found


def _open_beneath(top: Path, rel: str) -> int | None:
    """Directory `rel` under `top`, opened one component at a time without following a
    symbolic link; None if it is not there."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(top, flags)
    except OSError:
        return None
    for part in rel.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            os.close(fd)
            return None
        try:
            child = os.open(part, flags, dir_fd=fd)
        except OSError:
            return None
        finally:
            os.close(fd)
        fd = child
    return fd


def is_directory(last: LastCopy, rel: str) -> bool:
    """Whether `rel` (its parent already known to be a directory) is a directory in the
    last copy: a symbolic link there would lead a link outside it."""
    try:
        return stat.S_ISDIR(os.lstat(rel, dir_fd=last.fd).st_mode)
    except OSError:
        return False


def link_unchanged(last: LastCopy, rel: str, dst: str, st: os.stat_result, mode: int,
                   owner: tuple[int, int]) -> bool:
    """Link the last copy's file `rel` (its parents known to be directories) as `dst`
    when source lstat `st` shows the file unchanged since and the copy there has the
    permission bits `mode` and the owner `owner` this copy gives it. False: copy it."""
    if st.st_ctime_ns >= last.before_ns:
        return False
    try:
        there = os.lstat(rel, dir_fd=last.fd)
        if not (stat.S_ISREG(there.st_mode) and there.st_size == st.st_size
                and there.st_mtime_ns == st.st_mtime_ns
                and stat.S_IMODE(there.st_mode) == mode
                and (there.st_uid, there.st_gid) == owner):
            return False
        os.link(rel, dst, src_dir_fd=last.fd, follow_symlinks=False)
    except OSError:
        return False
    return True
