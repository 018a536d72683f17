"""The store's trash: where finished step directories go, to be deleted later.

Deleting a step's directory costs what its files cost the kernel to free: about a
second for a COPY of 20,000 files and 240 MB here (3 s where the disk discards freed
blocks at once and the machine is busy), at the end of the build that made it. A
rename into `snapshots/trash/` is instant instead, and the files are deleted while a
later build runs its steps (in a file-op child), or by `ocibuild cache prune`. Nothing
ever reads the trash: an entry half deleted, or deleted by two builds at once, harms
nothing.

A build that ran steps ends only once the entries of builds before the last one are
gone (finish_emptying): the background deleter does not always keep up (it used to run
at nice 19, and on a busy machine got so little that every --no-cache rebuild of a big
COPY left its 280 MB behind for good). The last build's entries may wait for the next
build: each entry gets two builds' time in the background before any build waits for
it, and the trash holds at most the step directories of the last two builds (and of
builds running now). The deleter runs at normal priority: deleting is mostly waiting
for the disk, and measured here, a nice 19 deleter left more for the build's end to
wait for than it saved the steps (bigctx --no-cache rebuilds, median 5.2 s against
4.8 s).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.idspace.requests import Request, handler, request_type

if TYPE_CHECKING:
    from collections.abc import Sequence

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


class Emptying:
    """The trash entries a build found when it began (`names`, oldest build's first),
    being deleted in the background; `older`: those of builds before the last one."""

    def __init__(self, trash: Path, names: tuple[str, ...], older: tuple[str, ...]) -> None:
        self.trash, self.names, self.older = trash, names, older
        self.thread = threading.Thread(target=self._run, name="trash", daemon=True)

    def _run(self) -> None:
        from ocibuild.idspace import userns

        with contextlib.suppress(Exception):
            userns.request(EmptyTrash(str(self.trash), self.names))


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


def empty_in_background(store: Store) -> Emptying | None:
    """Delete what the trash holds now, in a file-op child, while this
    build goes on (for a build that runs steps: it has the file-op server anyway); None
    when it holds nothing. finish_emptying() deletes what is left of the entries of
    builds before the last one."""
    trash = trash_dir(store)
    try:
        builds = _by_build(trash)
    except OSError:
        return None
    if not builds:
        return None
    emptying = Emptying(trash, tuple(n for names in builds for n in names),
                        tuple(n for names in builds[:-1] for n in names))
    emptying.thread.start()
    return emptying


def finish_emptying(emptying: Emptying | None) -> None:
    """(When the build's work is done.) Delete, in this build's time, what the background
    deleter has not deleted yet of the entries of builds before the last one (from the
    other end of its list: the two meet rather than contend). Never fails: the next
    build or prune deletes what is left."""
    if emptying is None or not emptying.thread.is_alive():
        return
    left = tuple(n for n in reversed(emptying.older)
                 if os.path.lexists(os.path.join(emptying.trash, n)))
    if not left:
        return
    from ocibuild.idspace import userns

    with contextlib.suppress(Exception):
        userns.request(EmptyTrash(str(emptying.trash), left))


@request_type
class EmptyTrash(Request[None]):
    """Delete the entries `names` of the trash directory `dir` (plain names in it)."""

    dir: str
    names: tuple[str, ...]


@handler(EmptyTrash)
def empty_in_userns(args: EmptyTrash) -> None:
    """(Under the sandbox mapping, in a process of its own.) The entries deleted."""
    for name in args.names:
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            continue  # only entries right in the trash directory
        path = os.path.join(args.dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)  # another build may delete it too
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
