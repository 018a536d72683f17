"""The store's trash: where finished step directories go, to be deleted later.

Deleting a step's directory costs what its files cost the kernel to free: about a
second for a COPY of 20,000 files and 240 MB here (3 s where the disk discards freed
blocks at once and the machine is busy). Worse, on ext4 without a journal every file
created in the next minutes scans past the inodes just freed: measured here, bigctx
`--no-cache` rebuilds (a 280 MB COPY) took 7.4-11 s while each deleted an earlier
build's copy, 5.0-5.7 s while none did. A rename into `snapshots/trash/` is instant
instead. Nothing writes to an entry but its deletion, and the only reader is a COPY
linking the unchanged files of the last copy of the same context directory
(copy_links), which copies what it cannot link: an entry half deleted, or deleted by
two builds at once, harms nothing.

The trash keeps entries up to a budget, as BuildKit keeps the cache records a
`--no-cache` build replaced until its garbage collector finds the cache over its cap:
`OCIBUILD_TRASH_KEEP` bytes (a size as `cache prune --keep-storage` reads it), by
default 10% of the size of the store's filesystem (BuildKit's default cap), and
never so much that the filesystem keeps less than that 10% free. A build that runs
steps looks at the trash when it starts, in a file-op child: it sizes the entries it
has not sized before (once each; the size goes into the entry's name) and, when the
trash is over its budget, deletes the oldest builds' entries until it is not. The
build ends only once that is done (finish_emptying deletes, from the other end, what
the background child has not reached), so a busy machine cannot make the trash grow
past its budget; `ocibuild cache prune` empties it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.atomic import remove_tree
from ocibuild.idspace.requests import Request, handler, request_type

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ocibuild.cache.store import Store


def trash_dir(store: Store) -> Path:
    return store.snapshots_dir / "trash"


def discard(store: Store, step_dirs: Sequence[Path]) -> None:
    """Move the step directories into the trash (or delete them now where a rename
    cannot: another filesystem, a name taken)."""
    from ocibuild.idspace import userns

    trash = trash_dir(store)
    trash.mkdir(exist_ok=True)
    left = []
    for path in step_dirs:
        try:
            os.rename(path, trash / path.name)
        except FileNotFoundError:
            continue
        except OSError:
            left.append(path)
    if left:
        userns.remove_trees(left)


KEEP_ENV = "OCIBUILD_TRASH_KEEP"
FILESYSTEM_SHARE = 0.10  # the default budget and the free space kept, of the filesystem


class Emptying:
    """The background trim of the trash a build started; finish_emptying completes it."""

    def __init__(self, request: TrimTrash) -> None:
        self.request = request
        self.thread = threading.Thread(target=self._run, name="trash", daemon=True)

    def _run(self) -> None:
        from ocibuild.idspace import userns

        with contextlib.suppress(Exception):
            userns.request(self.request)


def _by_build(trash: Path) -> list[list[str]]:
    """The trash's entries grouped by the build that left them (their names start with
    its process's name: temporaries.step_dir_name), oldest build first."""
    builds: dict[str, list[str]] = {}
    age: dict[str, float] = {}
    for entry in os.scandir(trash):
        build = entry.name.rsplit("-", 1)[0]
        builds.setdefault(build, []).append(entry.name)
        with contextlib.suppress(OSError):
            mtime = entry.stat(follow_symlinks=False).st_mtime
            age[build] = min(age.get(build, mtime), mtime)
    return [sorted(builds[b]) for b in sorted(builds, key=lambda b: (age.get(b, 0.0), b))]


def keep_bytes(trash: Path) -> int:
    """How many bytes the trash may hold (see the module's notes)."""
    configured = os.environ.get(KEEP_ENV, "").strip()
    if configured:  # (its parser compiles patterns: loaded when there is one to read)
        from ocibuild.cache.units import parse_size
        from ocibuild.errors import UsageError

        try:
            return parse_size(configured)
        except UsageError as exc:
            raise UsageError(f"{KEEP_ENV}: {exc.message}") from None
    fs = os.statvfs(trash)
    return int(fs.f_blocks * fs.f_frsize * FILESYSTEM_SHARE)


def empty_in_background(store: Store) -> Emptying | None:
    """Trim the trash to its budget in a file-op child while this build goes on (for a
    build that runs steps: it has the file-op server anyway); None when the trash holds
    nothing. finish_emptying() completes it."""
    trash = trash_dir(store)
    try:
        if not any(True for _ in os.scandir(trash)):
            return None
        keep = keep_bytes(trash)
    except OSError:
        return None
    emptying = Emptying(TrimTrash(str(trash), keep))
    emptying.thread.start()
    return emptying


def finish_emptying(emptying: Emptying | None) -> None:
    """(When the build's work is done.) Delete, in this build's time, what the background
    trim has not deleted yet (from the other end of its list: the two meet rather than
    contend). Never fails: the next build or prune deletes what is left."""
    if emptying is None or not emptying.thread.is_alive():
        return
    from ocibuild.idspace import userns

    with contextlib.suppress(Exception):
        userns.request(TrimTrash(emptying.request.dir, emptying.request.keep,
                                 newest_first=True))


@request_type
class TrimTrash(Request[None]):
    """Size the entries of the trash directory `dir` not sized yet, then delete the
    oldest builds' entries until the trash holds at most `keep` bytes and its
    filesystem has FILESYSTEM_SHARE of its size free (or the trash is empty);
    `newest_first`: delete the chosen entries in the opposite order."""

    stateless = True
    dir: str
    keep: int
    newest_first: bool = False


def entry_size(name: str) -> int | None:
    """The size a trash entry's name carries (`NAME.BYTES`), None if not sized yet."""
    head, dot, size = name.rpartition(".")
    return int(size) if dot and head and size.isdigit() else None


def _sized(trash: str, name: str) -> tuple[str, int]:
    """The entry's name and size, sizing it now (and naming it so) when needed."""
    from ocibuild.idspace.userns import tree_size

    known = entry_size(name)
    if known is not None:
        return name, known
    path = os.path.join(trash, name)
    size = tree_size(Path(path)) if os.path.isdir(path) and not os.path.islink(path) else 0
    sized = f"{name}.{size}"
    try:
        os.rename(path, os.path.join(trash, sized))
    except OSError:
        return name, size  # gone, or being sized by another build: counted as found
    return sized, size


@handler(TrimTrash)
def trim_in_userns(args: TrimTrash) -> None:
    """(Under the sandbox mapping, in a forked child or the resident.) The trash,
    trimmed."""
    try:
        entries = [_sized(args.dir, name) for names in _by_build(Path(args.dir))
                   for name in names]
        fs = os.statvfs(args.dir)
    except OSError:
        return
    total = sum(size for _, size in entries)
    short_of_free = int(fs.f_blocks * fs.f_frsize * FILESYSTEM_SHARE) \
        - fs.f_bavail * fs.f_frsize
    excess = max(total - args.keep, short_of_free)
    chosen: list[str] = []
    for name, size in entries:  # oldest build's first
        if excess <= 0:
            break
        chosen.append(name)
        excess -= size
    _delete(args.dir, reversed(chosen) if args.newest_first else chosen)


def _delete(trash: str, names: Iterable[str]) -> None:
    for name in names:
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            continue  # only entries right in the trash directory
        path = os.path.join(trash, name)
        if os.path.isdir(path) and not os.path.islink(path):
            remove_tree(path)  # another build may delete it too
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)


def empty_now(store: Store, *, own_only: bool) -> None:
    """Delete trash entries now, before the build exits: this process's (named after its
    temporary directory; a failed build's step directories), or every entry (the disk
    is full: they are only waiting to be deleted). Never fails: prune removes the rest."""
    from ocibuild.cache import temporaries
    from ocibuild.idspace import userns

    prefix = temporaries.process_dir(store.root).name + "-"
    try:
        entries = [Path(e.path) for e in os.scandir(trash_dir(store))
                   if not own_only or e.name.startswith(prefix)]
        if entries:
            userns.remove_trees(entries)
    except Exception:  # noqa: BLE001 (the build's own error is the one to report)
        pass
