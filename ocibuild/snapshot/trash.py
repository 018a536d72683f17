"""The store's trash: where finished step directories go, to be deleted later.

Deleting a step's directory costs what its files cost the kernel to free: about a
second for a COPY of 20,000 files and 240 MB here, at the end of the build that made
it. A rename into `snapshots/trash/` is instant instead, and the files are deleted
while a later build runs its steps (in a file-op child, at low priority), or by
`ocibuild cache prune`. Nothing ever reads the trash: an entry half deleted, or
deleted by two builds at once, harms nothing.
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


def empty_in_background(store: Store) -> None:
    """Delete what the trash holds now, in a file-op child, while this build goes on
    (for a build that runs steps: it has the file-op server anyway). Whatever is not
    deleted when the build ends stays for the next one."""
    trash = trash_dir(store)
    try:
        if not any(os.scandir(trash)):
            return
    except OSError:
        return
    from ocibuild.idspace import userns

    def run() -> None:
        with contextlib.suppress(Exception):
            userns.request(EmptyTrash(str(trash)))

    threading.Thread(target=run, name="trash", daemon=True).start()


@request_type
class EmptyTrash(Request[None]):
    """Delete every entry of the trash directory `dir`."""

    dir: str


@handler(EmptyTrash)
def empty_in_userns(args: EmptyTrash) -> None:
    """(Under the sandbox mapping, in a process of its own.) The entries deleted,
    yielding the CPU to the build's steps."""
    with contextlib.suppress(OSError):
        os.nice(19)
    base = args.dir
    for name in os.listdir(base):
        path = os.path.join(base, name)
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
