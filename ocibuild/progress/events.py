"""Progress events. Each step (vertex) has a stable number `index` (its position in the
graph's deterministic order), a name like "[stage-a 2/3] RUN echo a", and a life:
started -> (log lines, statuses) -> done | cached | failed.

A "status" event is the progress of one part of a step, as BuildKit's vertex statuses:
a blob being pulled, pushed or compressed (`text` is its id, e.g. the blob's digest;
`current` of `total` bytes, `total` 0 when unknown; `started` when it began) and, with
`completed`, its end. ocibuild.progress.transfer makes them, throttled."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

EventKind = Literal["started", "cached", "log", "done", "failed", "status"]


@dataclass(frozen=True)
class Event:
    """A step started, finished, failed, was cached, printed a line, or reported the
    progress of a part of its work (a status)."""

    kind: EventKind
    index: int
    name: str
    time: float = field(default_factory=time.monotonic)
    text: str = ""  # a log line (without newline) or the error message
    exit_code: int | None = None
    digest: str = ""  # the step's op digest in the build graph (as BuildKit's vertex)
    stream: int = 1  # a log line's stream, numbered as BuildKit's: 1 stdout, 2 stderr
    current: int = 0  # a status's bytes done
    total: int = 0  # a status's bytes in all (0: unknown)
    started: float | None = None  # when a status began (monotonic)
    completed: bool = False  # a status that ended


Sink = Callable[[Event], None]

CANCELLED_SUFFIX = "exit code: cancelled"  # how the solver reports a step it killed


def is_cancellation(event: Event) -> bool:
    """A failed event of a step stopped by the build, not failed by itself: killed
    because another step failed, or ended by the interrupt (Ctrl-C reaches the step's
    processes too). BuildKit shows these CANCELED and leaves them out of the failure
    report."""
    from ocibuild import interrupt

    return event.kind == "failed" and (event.text.endswith(CANCELLED_SUFFIX)
                                       or interrupt.requested.is_set())


class Recorder:
    """A thread-safe sink that keeps every event (for tests and for error reports)."""

    def __init__(self, forward: Sink | None = None) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._forward = forward

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)
            if self._forward is not None:
                self._forward(event)

    def of_kind(self, kind: EventKind) -> list[Event]:
        return [e for e in self.events if e.kind == kind]
