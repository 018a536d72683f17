"""Running the documents' commands two at a time, for the docs test.

Each document (and each CI recipe) is a job: its blocks run in order, in a directory of
its own, and a job's result is what its test asserts on. Most of a job is one process
at a time waiting on one core (pip, mmdebstrap, a build), so two jobs side by side
take about as long as the longer of them on the two cores CI has, not their sum.

Jobs share the machine, so a block run as root (it installs packages, writes
/etc/subuid or sysctl settings) runs alone: `BlockGate` lets blocks run as the user
side by side and holds every other block back while one runs as root.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

JOBS_AT_ONCE = 2  # the cores of the CI machine


class BlockGate:
    """Shared for blocks run as the user, exclusive for blocks run as root. A root block
    waiting keeps new user blocks from starting, so it is never starved."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting_exclusive = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive and not self._waiting_exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting_exclusive += 1
            self._cond.wait_for(lambda: not self._exclusive and not self._shared)
            self._waiting_exclusive -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class DocJobs:
    """Jobs started in the order given, JOBS_AT_ONCE at a time; `result` waits for one
    and returns its value or raises what it raised (an AssertionError keeps its
    message), so the failure shows in that job's test."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(JOBS_AT_ONCE, thread_name_prefix="docs-job")
        self._jobs: dict[str, Future[Any]] = {}

    def submit(self, key: str, job: Callable[[], Any]) -> None:
        self._jobs[key] = self._pool.submit(job)

    def result(self, key: str) -> Any:
        return self._jobs[key].result()

    def close(self) -> None:
        """Drop the jobs not started (after a failure with -x, say) and wait for the
        running ones, which remove their directories as they end."""
        self._pool.shutdown(wait=True, cancel_futures=True)
