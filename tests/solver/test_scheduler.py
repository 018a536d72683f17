from __future__ import annotations

import threading
import time

import pytest

from ocibuild.solver.scheduler import Scheduler

GRAPH = {"a": [], "b": [], "c": ["a", "b"], "d": ["c"]}


def _run(jobs: int, work_time: float = 0.2) -> tuple[dict[str, str], list[str], int]:
    order: list[str] = []
    active = 0
    peak = 0
    lock = threading.Lock()

    def work(node: str) -> str:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
            order.append(node)
        time.sleep(work_time if node in ("a", "b") else 0)
        with lock:
            active -= 1
        return node.upper()

    results = Scheduler[str, str](jobs).run(list(GRAPH), GRAPH.__getitem__, work)
    return results, order, peak


def test_independent_nodes_run_at_the_same_time() -> None:
    start = time.monotonic()
    results, order, peak = _run(jobs=2)
    assert time.monotonic() - start < 0.35
    assert results == {"a": "A", "b": "B", "c": "C", "d": "D"}
    assert peak == 2
    assert order.index("c") > max(order.index("a"), order.index("b"))


def test_jobs_bounds_concurrency() -> None:
    start = time.monotonic()
    _, _, peak = _run(jobs=1)
    assert peak == 1
    assert time.monotonic() - start >= 0.4


def test_first_failure_stops_dependents_and_is_raised() -> None:
    ran: list[str] = []

    def work(node: str) -> str:
        ran.append(node)
        if node == "a":
            raise RuntimeError("boom")
        return node

    sched = Scheduler[str, str](2)
    with pytest.raises(RuntimeError, match="boom"):
        sched.run(list(GRAPH), GRAPH.__getitem__, work)
    assert "c" not in ran and "d" not in ran
    assert sched.cancelled.is_set()
