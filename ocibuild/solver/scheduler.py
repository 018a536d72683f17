"""Runs a dependency graph: a node starts as soon as all its inputs are done, with at
most `jobs` nodes running at once. The first failure stops new nodes from starting."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from ocibuild.threads import Task

N = TypeVar("N", bound=Hashable)
R = TypeVar("R")


class Scheduler(Generic[N, R]):
    def __init__(self, jobs: int) -> None:
        if jobs < 1:
            raise ValueError("jobs must be at least 1")
        self.jobs = jobs
        self.cancelled = threading.Event()  # set on the first failure; work may poll it

    def run(self, nodes: Sequence[N], inputs: Callable[[N], Sequence[N]],
            work: Callable[[N], R], *, inline: bool = False,
            meanwhile: Callable[[], object] | None = None,
            quick: Callable[[N], bool] | None = None) -> dict[N, R]:
        """Run `work` on every node (inputs first). Returns each node's result; re-raises
        the first exception after the nodes already running have finished. `inline`:
        one node at a time in this thread (for work that never waits). `meanwhile` is
        called once, in this thread, when the running nodes have run a whole slice
        (_SIGNAL_CHECK) without one finishing: this thread has time for other work.
        `quick` nodes run in this thread as they become ready, not on a worker: work
        that never waits, for which handing it to a thread and back costs more."""
        pending: dict[N, set[N]] = {n: set(inputs(n)) for n in nodes}
        users: dict[N, list[N]] = {n: [] for n in nodes}
        for n, deps in pending.items():
            for d in deps:
                if d not in users:
                    raise ValueError(f"input {d!r} of {n!r} is not among the nodes")
                users[d].append(n)
        order = {n: i for i, n in enumerate(nodes)}
        ready = sorted((n for n, deps in pending.items() if not deps), key=order.__getitem__)
        results: dict[N, R] = {}
        if inline:
            while ready:
                node = ready.pop(0)
                try:
                    results[node] = work(node)
                except BaseException:
                    self.cancelled.set()
                    raise
                newly = [u for u in users[node] if _discard(pending[u], node)]
                ready.extend(newly)
                ready.sort(key=order.__getitem__)
            return results
        from ocibuild.threads import FIRST_COMPLETED, Threads, wait

        error: BaseException | None = None
        running: dict[Task[R], N] = {}
        with Threads(self.jobs, "solve") as pool:
            try:
                while ready or running:
                    while ready and error is None and len(running) < self.jobs:
                        node = ready.pop(0)
                        if quick is None or not quick(node):
                            running[pool.submit(work, node)] = node
                            continue
                        try:
                            results[node] = work(node)
                        except Exception as exc:  # as a worker's: after those running
                            error = exc
                            self.cancelled.set()
                            ready.clear()
                            break
                        ready.extend(u for u in users[node] if _discard(pending[u], node))
                        ready.sort(key=order.__getitem__)
                    if not running:
                        break
                    # in slices: a Ctrl-C the kernel hands to another thread only
                    # marks the handler pending, and a wait without a timeout would not
                    # return to run it while a step runs on (`sleep 4714`: for good)
                    done, _ = wait(running, timeout=_SIGNAL_CHECK, return_when=FIRST_COMPLETED)
                    if not done and meanwhile is not None:
                        meanwhile()
                        meanwhile = None
                    newly: list[N] = []
                    for fut in done:
                        node = running.pop(fut)
                        exc = fut.exception()
                        if exc is not None:
                            if error is None:
                                error = exc
                                self.cancelled.set()
                            continue
                        results[node] = fut.result()
                        for user in users[node]:
                            pending[user].discard(node)
                            if not pending[user]:
                                newly.append(user)
                    if error is None:
                        ready.extend(newly)
                        ready.sort(key=order.__getitem__)
                    else:
                        ready.clear()
            except BaseException:
                # Ctrl-C (or a SIGTERM the CLI turns into one) lands in this thread's
                # wait: the running nodes see `cancelled` and stop (a step is killed),
                # so leaving the pool waits for that, not for their natural end.
                self.cancelled.set()
                raise
        if error is not None:
            raise error
        return results


_SIGNAL_CHECK = 0.2  # seconds between two looks at a pending signal while steps run


def _discard(deps: set[N], done: N) -> bool:
    """Remove `done` from a node's pending inputs; True when none is left."""
    deps.discard(done)
    return not deps
