"""ocibuild.threads: the worker threads that replace concurrent.futures in the builder."""

from __future__ import annotations

import dis
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from ocibuild.threads import ALL_COMPLETED, FIRST_COMPLETED, Task, TaskCancelled, Threads, wait


def _started_then_wait(started: threading.Event, release: threading.Event) -> bool:
    started.set()
    return release.wait(5)


def test_results_and_errors_come_back_to_the_caller() -> None:
    with Threads(2, "t") as pool:
        ok = pool.submit(lambda a, b: a + b, 2, 3)
        bad = pool.submit(lambda: 1 / 0)
        assert ok.result() == 5
        with pytest.raises(ZeroDivisionError):
            bad.result()
        assert isinstance(bad.exception(), ZeroDivisionError)
        assert ok.exception() is None


def test_no_more_threads_than_asked_and_each_reused() -> None:
    seen: set[str] = set()
    running = 0
    most = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            seen.add(threading.current_thread().name)
        time.sleep(0.01)
        with lock:
            running -= 1

    with Threads(2, "capped") as pool:
        tasks = [pool.submit(work) for _ in range(8)]
        wait(tasks)
    assert most == 2
    assert seen == {"capped_0", "capped_1"}


def test_prestarted_workers_take_the_calls_submitted_later() -> None:
    def names() -> set[str]:
        return {t.name for t in threading.enumerate() if t.name.startswith("early_")}

    with Threads(3, "early") as pool:
        pool.prestart(2)
        assert names() == {"early_0", "early_1"}  # there before any call
        deadline = time.monotonic() + 5
        while pool._idle < 2 and time.monotonic() < deadline:  # both waiting for one
            time.sleep(0.001)
        ran_on = pool.submit(lambda: threading.current_thread().name).result(timeout=5)
        assert ran_on in {"early_0", "early_1"}
        assert names() == {"early_0", "early_1"}  # the call started no thread
        pool.prestart(5)  # never past the pool's size
        assert names() == {"early_0", "early_1", "early_2"}
    assert not names()


def test_a_later_call_runs_on_a_thread_that_is_already_there() -> None:
    # the solver's steps keep a database connection per thread: a worker that left
    # between two steps would make the next step open a new one
    with Threads(1, "kept") as pool:
        first = pool.submit(threading.get_ident).result()
        time.sleep(0.05)
        assert pool.submit(threading.get_ident).result() == first


def test_two_calls_submitted_at_once_run_at_once() -> None:
    both = threading.Barrier(2, timeout=5)
    with Threads(2, "pair") as pool:
        pool.submit(lambda: None).result()  # one worker, idle now
        tasks = [pool.submit(both.wait), pool.submit(both.wait)]
        assert {t.result() for t in tasks} == {0, 1}  # neither waited for the other


def test_wait_for_the_first_returns_when_one_ends() -> None:
    release = threading.Event()
    with Threads(2, "w") as pool:
        slow = pool.submit(release.wait, 5)
        fast = pool.submit(lambda: "fast")
        started = time.monotonic()
        done, not_done = wait([slow, fast], timeout=5, return_when=FIRST_COMPLETED)
        assert time.monotonic() - started < 2
        assert done == {fast} and not_done == {slow}
        release.set()
        done, not_done = wait([slow, fast], timeout=5, return_when=ALL_COMPLETED)
        assert done == {slow, fast} and not not_done


def test_wait_gives_up_at_its_timeout() -> None:
    release = threading.Event()
    with Threads(1, "timeout") as pool:
        task = pool.submit(release.wait, 5)
        started = time.monotonic()
        done, not_done = wait([task], timeout=0.05, return_when=FIRST_COMPLETED)
        assert not done and not_done == {task}
        assert time.monotonic() - started < 2
        with pytest.raises(TimeoutError):
            task.result(timeout=0.01)
        release.set()


def test_a_call_not_started_can_be_cancelled_a_running_one_cannot() -> None:
    started, release = threading.Event(), threading.Event()
    with Threads(1, "cancel") as pool:
        running = pool.submit(_started_then_wait, started, release)
        queued = pool.submit(lambda: "never")
        assert started.wait(5)
        assert queued.cancel() and queued.cancelled() and queued.done()
        assert not running.cancel()
        release.set()
    assert running.result() is True
    with pytest.raises(TaskCancelled):
        queued.result()


def test_leaving_the_block_waits_for_every_call_unless_told_to_cancel() -> None:
    ran: list[int] = []
    with Threads(1, "drain") as pool:
        for i in range(3):
            pool.submit(lambda i=i: (time.sleep(0.01), ran.append(i)))
    assert ran == [0, 1, 2]

    started, release = threading.Event(), threading.Event()
    pool = Threads(1, "cancelled")
    first = pool.submit(_started_then_wait, started, release)
    rest = [pool.submit(ran.append, 9) for _ in range(3)]
    assert started.wait(5)
    threading.Timer(0.05, release.set).start()
    pool.shutdown(wait=True, cancel_pending=True)
    assert first.result() is True
    assert all(task.cancelled() for task in rest) and 9 not in ran
    with pytest.raises(RuntimeError):
        pool.submit(ran.append, 1)


# Where a signal handler's exception can land in the main thread: when a function starts,
# after a call returns, at a loop's jump back (the points where CPython 3.11 runs
# pending signal handlers).
_HANDLER_POINTS = {dis.opmap["CALL"], dis.opmap["JUMP_BACKWARD"]}
_WAIT_CODE = ("/ocibuild/threads.py", "/threading.py")


def _interrupted_at(point: int, call: Callable[[], object]) -> str | None:
    """Run `call` in this thread with a KeyboardInterrupt raised at its `point`th place
    where a Ctrl-C could raise one. "interrupted", what else it raised, or None (it
    ended before that point)."""
    passed = 0
    last: dict[FrameType, int] = {}

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal passed
        if not frame.f_code.co_filename.endswith(_WAIT_CODE):
            return None  # (a garbage collector's callback, say)
        frame.f_trace_opcodes = True
        if event == "call":
            here = True
        else:
            here = event == "opcode" and last.get(frame) in _HANDLER_POINTS
            last[frame] = frame.f_code.co_code[frame.f_lasti]
        if here:
            passed += 1
            if passed == point:
                raise KeyboardInterrupt
        return trace

    before = sys.gettrace()
    sys.settrace(trace)
    try:
        call()
    except KeyboardInterrupt:
        return "interrupted"
    except BaseException as exc:  # noqa: BLE001 (what the test reports)
        return repr(exc)
    finally:
        sys.settrace(before)
    return None


@pytest.mark.parametrize("how", ["first", "all", "result"])
def test_ctrl_c_anywhere_in_a_wait_is_a_keyboard_interrupt_and_the_task_still_ends(
        how: str) -> None:
    # CI saw a build end on "RuntimeError: release unlocked lock" instead of exit 130:
    # the Ctrl-C landed inside threading.Event's wait, in the scheduler's waiting loop
    waits: dict[str, Callable[[Task[Any]], object]] = {
        "first": lambda task: wait([task], timeout=0.001, return_when=FIRST_COMPLETED),
        "all": lambda task: wait([task], timeout=0.001, return_when=ALL_COMPLETED),
        "result": lambda task: task.exception(timeout=0.001),
    }
    point = 0
    while True:
        point += 1
        release = threading.Event()
        pool = Threads(1, "interrupted")
        task = pool.submit(release.wait, 10)
        outcome = _interrupted_at(point, lambda task=task: waits[how](task))
        release.set()
        deadline = time.monotonic() + 5
        while not task.done() and time.monotonic() < deadline:
            time.sleep(0.001)  # (not wait(): what is tested may be what got stuck)
        assert task.done(), f"interrupted at point {point}, the task never ended"
        pool.shutdown()
        if outcome is None or outcome.startswith("TimeoutError"):
            break  # the wait ran to its end: every point was tried
        assert outcome == "interrupted", f"at point {point}: {outcome}"
    assert point > 10  # the trace did see the wait's inside
