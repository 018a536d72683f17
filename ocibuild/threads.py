"""Worker threads: the part of `concurrent.futures` the builder uses.

`Threads.submit` a call and get its `Task` (`result`, `exception`, `done`, `cancel`);
`wait` for the first or for all of several tasks, with a timeout; leaving the `with`
block (or `shutdown`) waits for every call submitted. concurrent.futures itself costs
~3-5 ms to import (it loads logging, traceback and string): on the critical path of
every build that runs a step, and of every push or pull.

Workers start as calls are submitted, at most `count`, and stay until the threads are
shut down: a later call of the same pool runs on a thread that already has its
thread-local state (the store's database connection). They are daemon threads: a pool
that is never shut down does not keep the interpreter from exiting.
"""

from __future__ import annotations

import _thread
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

FIRST_COMPLETED = "FIRST_COMPLETED"
ALL_COMPLETED = "ALL_COMPLETED"

_PENDING, _RUNNING, _CANCELLED, _FINISHED = range(4)


class TaskCancelled(RuntimeError):
    """The result of a task that was cancelled before it started."""


class Task(Generic[T]):
    """One submitted call."""

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        self._fn = fn
        self._args = args
        self._lock = threading.Lock()  # the state and the waiters change under it
        self._state = _PENDING
        self._done = threading.Event()  # set once the call ended; waited for by _wait_for()
        self._waiters: list[_thread.LockType] = []
        self._value: T | None = None
        self._error: BaseException | None = None

    def cancel(self) -> bool:
        """Keep the call from running, if it has not started; whether it was kept."""
        with self._lock:
            if self._state == _PENDING:
                self._state = _CANCELLED
            elif self._state != _CANCELLED:
                return False
        self._end()
        return True

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> T:
        """The call's value, once it returned; its exception, raised, if it raised."""
        error = self.exception(timeout)
        if error is not None:
            raise error
        return self._value  # type: ignore[return-value]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """What the call raised (None: it returned), once it ended."""
        if not self._done.is_set() and not _wait_for(self, timeout=timeout):
            raise TimeoutError(f"the call did not end within {timeout} s")
        if self._state == _CANCELLED:
            raise TaskCancelled("the call was cancelled")
        return self._error

    def _run(self) -> None:
        with self._lock:
            if self._state != _PENDING:
                return  # cancelled
            self._state = _RUNNING
        try:
            self._value = self._fn(*self._args)
        except BaseException as exc:  # noqa: BLE001 (handed to result(), as a Future does)
            self._error = exc
        with self._lock:
            self._state = _FINISHED
        self._end()

    def _end(self) -> None:
        with self._lock:
            self._done.set()
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            _wake(waiter)

    def _notify(self, waiter: _thread.LockType) -> None:
        """Set `waiter` when this task ends (at once when it has)."""
        with self._lock:
            if not self._done.is_set():
                self._waiters.append(waiter)
                return
        _wake(waiter)

    def _forget(self, waiter: _thread.LockType) -> None:
        with self._lock:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


def wait(tasks: Iterable[Task[Any]], timeout: float | None = None,
         return_when: str = ALL_COMPLETED) -> tuple[set[Task[Any]], set[Task[Any]]]:
    """Until the first of `tasks` (FIRST_COMPLETED) or all of them (ALL_COMPLETED) have
    ended, or `timeout` seconds; (the tasks done, the others)."""
    tasks = set(tasks)
    deadline = None if timeout is None else time.monotonic() + timeout
    if return_when == FIRST_COMPLETED:
        if not any(task.done() for task in tasks):
            _wait_for(*tasks, timeout=timeout)
    else:
        for task in tasks:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not task.done() and not _wait_for(task, timeout=left):
                break
    done = {task for task in tasks if task.done()}
    return done, tasks - done


def _wait_for(*tasks: Task[Any], timeout: float | None) -> bool:
    """Until one of `tasks` ends (True) or `timeout` seconds pass (False).

    The wait is a bare lock that only this thread acquires, not a threading.Event: the
    main thread takes Ctrl-C, whose KeyboardInterrupt the signal handler raises between
    two calls wherever that thread is. Inside Event.wait (a Condition's wait) one such
    place is just after the condition's lock was released and before the code that
    takes it back: the caller's `with` then released it a second time and the build
    ended on "RuntimeError: release unlocked lock" (and a later wait on that Event could
    hang). A bare acquire the handler interrupts leaves nothing half done."""
    waiter = _thread.allocate_lock()
    waiter.acquire()
    try:
        for task in tasks:
            task._notify(waiter)
        return waiter.acquire(timeout=-1 if timeout is None else timeout)
    finally:
        for task in tasks:
            task._forget(waiter)


def _wake(waiter: _thread.LockType) -> None:
    """Let a _wait_for() return. Several tasks may end at once: only the first release
    counts, and its waiter is never released by anyone else (nor acquired again)."""
    try:
        waiter.release()
    except RuntimeError:
        pass  # woken already


class Threads:
    """At most `count` threads named `NAME_N` running submitted calls in the order
    submitted; leaving the `with` block waits for every call submitted to end."""

    def __init__(self, count: int, name: str) -> None:
        self._count = max(1, count)
        self._name = name
        self._todo: deque[Task[Any]] = deque()
        self._wake = threading.Condition(threading.Lock())
        self._workers: list[threading.Thread] = []
        self._idle = 0  # workers waiting for a call
        self._closed = False

    def submit(self, fn: Callable[..., T], *args: Any) -> Task[T]:
        task: Task[T] = Task(fn, args)
        with self._wake:
            if self._closed:
                raise RuntimeError(f"the {self._name} threads were shut down")
            self._todo.append(task)
            if len(self._todo) <= self._idle or len(self._workers) >= self._count:
                self._wake.notify()
                return task
            worker = threading.Thread(target=self._work, daemon=True,
                                      name=f"{self._name}_{len(self._workers)}")
            self._workers.append(worker)
        worker.start()
        return task

    def prestart(self, count: int) -> None:
        """Start idle workers now, up to `count` in all (and the pool's size), while the
        caller has time: calls submitted later find a thread waiting, rather than wait
        ~1-3 ms for one to start on busy cores."""
        started = []
        with self._wake:
            while len(self._workers) < min(count, self._count) and not self._closed:
                worker = threading.Thread(target=self._work, daemon=True,
                                          name=f"{self._name}_{len(self._workers)}")
                self._workers.append(worker)
                started.append(worker)
        for worker in started:
            worker.start()

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Take no more calls; with `wait`, return once every call submitted has ended
        (with `cancel_pending`, those not started yet never start)."""
        with self._wake:
            self._closed = True
            pending = list(self._todo) if cancel_pending else []
            self._wake.notify_all()
        for task in pending:
            task.cancel()
        if wait:
            for worker in list(self._workers):
                worker.join()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._todo:
                    if self._closed:
                        return
                    self._idle += 1
                    self._wake.wait()
                    self._idle -= 1
                task = self._todo.popleft()
            task._run()

    def __enter__(self) -> Threads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=True)
