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
    # Each of a and b waits for the other to start: run one after the other, the
    # first times out. No wall-clock bound, which a loaded CI machine broke.
    both_started = threading.Barrier(2, timeout=10)

    def work(node: str) -> str:
        if node in ("a", "b"):
            both_started.wait()
        return node.upper()

    results = Scheduler[str, str](2).run(list(GRAPH), GRAPH.__getitem__, work)
    assert results == {"a": "A", "b": "B", "c": "C", "d": "D"}


def test_dependents_wait_for_their_dependencies() -> None:
    results, order, peak = _run(jobs=2)
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


class _Stop(Exception):
    pass


def test_a_signal_the_kernel_hands_to_a_step_thread_still_stops_the_run() -> None:
    """A signal to the process may be delivered to any thread; its Python handler runs
    in the main thread, which must not sit in a wait that only a finishing step ends (a
    Ctrl-C during `RUN sleep 4714` left the build running)."""
    import signal

    scheduler = Scheduler[str, str](2)
    started = threading.Event()

    def work(node: str) -> str:
        started.set()
        time.sleep(0.5)  # the main thread is in its wait by now
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)  # to this thread
        scheduler.cancelled.wait(30)  # a step runs until the run is cancelled
        return node

    def stop(signum: int, frame: object) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGUSR1, stop)
    began = time.monotonic()
    try:
        with pytest.raises(_Stop):
            scheduler.run(["a"], lambda n: [], work)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert started.is_set() and scheduler.cancelled.is_set()
    assert time.monotonic() - began < 5


def test_meanwhile_runs_once_in_the_waiting_thread_while_nodes_run_long() -> None:
    # a runs until meanwhile has run: meanwhile must come while it still runs, in the
    # thread that waits, and once however long the nodes run after it
    calls: list[str] = []
    called = threading.Event()

    def work(node: str) -> str:
        if node == "a":
            assert called.wait(timeout=10), "meanwhile did not run while a ran"
            time.sleep(0.5)  # two more slices without a node finishing
        return node.upper()

    def meanwhile() -> None:
        calls.append(threading.current_thread().name)
        called.set()

    results = Scheduler[str, str](2).run(list(GRAPH), GRAPH.__getitem__, work,
                                         meanwhile=meanwhile)
    assert results == {"a": "A", "b": "B", "c": "C", "d": "D"}
    assert calls == [threading.current_thread().name]


def test_no_meanwhile_when_nodes_finish_within_a_slice() -> None:
    calls: list[int] = []
    results = Scheduler[str, str](2).run(list(GRAPH), GRAPH.__getitem__, str.upper,
                                         meanwhile=lambda: calls.append(1))
    assert results == {"a": "A", "b": "B", "c": "C", "d": "D"}
    assert calls == []  # every node finished within a slice: no idle time to use


def test_quick_nodes_run_in_the_calling_thread_as_they_become_ready() -> None:
    # a and c are quick: a first, in this thread; b on a worker; c once both are done
    where: dict[str, str] = {}

    def work(node: str) -> str:
        where[node] = threading.current_thread().name
        if node == "b":
            time.sleep(0.05)
        return node.upper()

    results = Scheduler[str, str](2).run(list(GRAPH), GRAPH.__getitem__, work,
                                         quick=lambda n: n in ("a", "c"))
    assert results == {"a": "A", "b": "B", "c": "C", "d": "D"}
    here = threading.current_thread().name
    assert where["a"] == where["c"] == here
    assert where["b"] != here and where["d"] != here


def test_a_quick_node_that_fails_stops_the_rest_after_those_running() -> None:
    finished: list[str] = []

    def work(node: str) -> str:
        if node == "b":
            time.sleep(0.05)
            finished.append(node)
        if node == "a":
            raise ValueError("a failed")
        return node.upper()

    scheduler = Scheduler[str, str](2)
    # b is submitted first (its order comes after a's: a quick node runs when popped)
    with pytest.raises(ValueError, match="a failed"):
        scheduler.run(["b", "a", "c", "d"], GRAPH.__getitem__, work,
                      quick=lambda n: n == "a")
    assert finished == ["b"] and scheduler.cancelled.is_set()
