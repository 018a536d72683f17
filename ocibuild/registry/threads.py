"""Worker threads for the registry's parallel transfers.

The part of `concurrent.futures.ThreadPoolExecutor` pushes and pulls use: `submit` a
call, get its `result()` (its exception raised again), `cancel()` one not yet started,
and leave the `with` block once every started call has returned. concurrent.futures
itself costs ~5 ms to import (it loads logging, traceback and string), a twentieth of a
push the registry already holds.

Workers start as calls are submitted, at most `count`, and each ends when no call is
left to run: nothing needs shutting down.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Task(Generic[T]):
    """One submitted call."""

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        self._fn = fn
        self._args = args
        self._done = threading.Event()
        self._state = threading.Lock()  # started and cancelled change under it
        self._started = False
        self._cancelled = False
        self._value: T | None = None
        self._error: BaseException | None = None

    def cancel(self) -> bool:
        """Keep the call from running, if it has not started; whether it was kept."""
        with self._state:
            if not self._started:
                self._cancelled = True
            return self._cancelled

    def result(self) -> T:
        """The call's value, once it returned; its exception, raised, if it raised."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        if self._cancelled:
            raise RuntimeError("the call was cancelled")
        return self._value  # type: ignore[return-value]

    def _run(self) -> None:
        with self._state:
            self._started = not self._cancelled
        try:
            if self._started:
                self._value = self._fn(*self._args)
        except BaseException as exc:  # handed to result(), like a Future does
            self._error = exc
        finally:
            self._done.set()


class Threads:
    """At most `count` threads named `NAME_N` running submitted calls; the `with` block
    waits for the calls that started to return."""

    def __init__(self, count: int, name: str) -> None:
        self._count = max(1, count)
        self._name = name
        self._todo: deque[Task[Any]] = deque()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._running = 0

    def submit(self, fn: Callable[..., T], *args: Any) -> Task[T]:
        task: Task[T] = Task(fn, args)
        with self._lock:
            self._todo.append(task)
            if self._running >= self._count:
                return task
            self._running += 1
            worker = threading.Thread(target=self._work,
                                      name=f"{self._name}_{len(self._workers)}")
            self._workers.append(worker)
        worker.start()
        return task

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._todo:
                    self._running -= 1
                    return
                task = self._todo.popleft()
            task._run()

    def __enter__(self) -> Threads:
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in list(self._workers):
            worker.join()
