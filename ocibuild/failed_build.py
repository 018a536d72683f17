"""What a build (or an import) that fails does to the store before it exits: it frees
the step directories it left in the trash, so that a failure never keeps space for a
later build to free, and a full disk becomes one message naming where it filled up,
what the store holds and the commands that show and free it."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ocibuild.cache.disk_full import disk_full_error, store_hint
from ocibuild.errors import DiskFullError, StepFailedError, is_disk_full, with_location

if TYPE_CHECKING:
    from ocibuild.cache.store import Store

DISK_FULL_TEXT = os.strerror(errno.ENOSPC)  # "No space left on device"


@contextlib.contextmanager
def cleaned_up(store: Store) -> Iterator[None]:
    """Free this process's trash when the block fails; a full disk (anywhere in the
    block: the store, an output, a RUN's files) also empties the whole trash and says
    what the store holds. (An interrupted build exits at once: the next build frees
    what it left.)"""
    try:
        yield
    except Exception as exc:
        from ocibuild.snapshot import trash

        if isinstance(exc, StepFailedError):  # its program says whether the disk is full
            full = any(DISK_FULL_TEXT in line for line in exc.tail)
        else:
            full = is_disk_full(exc)
        trash.empty_now(store, own_only=not full)
        if not full:
            raise
        if isinstance(exc, StepFailedError):
            raise with_location(
                StepFailedError(exc.name, f"{exc.message}; {store_hint(store.root)}",
                                exc.tail, returncode=exc.returncode), exc.location) from exc
        where = exc.filled if isinstance(exc, DiskFullError) else None
        raise disk_full_error(exc, store.root, where) from exc
