"""A COPY's files copied on a few threads while the walk goes on.

Copying a file is a handful of syscalls (open, create, sendfile, fstat, utime, close)
in which the kernel does nearly all the work, and one thread leaves the other cores
idle. How much that matters depends on where the kernel's time goes. Copying bigctx's
20,000 files and 277 MB on this 2-core machine (interleaved medians of 6, waiting for
the disk to settle before each): with nothing deleted lately, 2.18 s on three threads
against 2.24 s on one, no gain; right after large trees were deleted, when ext4
without a journal (this machine's) scans past the inodes freed in the last minute for
every file it creates (as in a store that empties its trash while builds run), 5.08 s
against 6.62 s. The threads cost about 1.5 times the kernel CPU of one.

Directories are made by the walking thread before any file under them is handed out,
so a worker never waits for its parent; the caller sets directory times once every
file is done. Batches keep the hand-off cheap, and at most `_WAITING` of them wait, so
memory stays bounded however large the context.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from ocibuild.threads import Task, Threads

COPY_THREADS = 3
_BATCH_FILES = 64
_BATCH_BYTES = 8 << 20
_WAITING = 2 * COPY_THREADS

CopyOne = Callable[[str, str, os.stat_result, bool], Any]


class FileCopies:
    """Files handed to `copy` (src, dst, lstat, fresh_parent) on worker threads.

    Use as a context manager: `add` each file, then `finish`, which returns once every
    file is copied or raises the error of the earliest failed batch (in the walk's
    order). Leaving the block by an exception cancels what has not started and waits
    for what has, so no thread writes after it."""

    def __init__(self, copy: CopyOne) -> None:
        self._copy = copy
        self._batch: list[tuple[str, str, os.stat_result, bool]] = []
        self._batch_bytes = 0
        self._pool: Threads | None = None
        self._futures: list[Task[None]] = []
        self._slots = threading.BoundedSemaphore(_WAITING)
        self._failed = threading.Event()

    def __enter__(self) -> FileCopies:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_pending=True)

    def add(self, src: str, dst: str, st: os.stat_result, fresh_parent: bool) -> None:
        self._batch.append((src, dst, st, fresh_parent))
        self._batch_bytes += st.st_size
        if len(self._batch) >= _BATCH_FILES or self._batch_bytes >= _BATCH_BYTES:
            self._submit()

    def finish(self) -> None:
        if self._pool is None:  # a small copy: no thread is worth starting
            self._run(self._take())
            return
        self._submit()
        for future in self._futures:
            future.result()

    def _take(self) -> list[tuple[str, str, os.stat_result, bool]]:
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        return batch

    def _submit(self) -> None:
        if not self._batch:
            return
        if self._failed.is_set():
            self._raise_first()
        if self._pool is None:
            self._pool = Threads(COPY_THREADS, "copy")
        self._slots.acquire()
        self._futures.append(self._pool.submit(self._run_batch, self._take()))

    def _run_batch(self, batch: list[tuple[str, str, os.stat_result, bool]]) -> None:
        try:
            if self._failed.is_set():
                return  # the copy fails anyway; finish reports the first error
            self._run(batch)
        except BaseException:
            self._failed.set()
            raise
        finally:
            self._slots.release()

    def _run(self, batch: list[tuple[str, str, os.stat_result, bool]]) -> None:
        copy = self._copy
        for src, dst, st, fresh_parent in batch:
            copy(src, dst, st, fresh_parent)

    def _raise_first(self) -> None:
        for future in self._futures:  # later batches skip their work: this is quick
            future.result()
