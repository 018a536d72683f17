"""BuildKit's plain progress format (`--progress=plain`), for CI logs:

    #3 [stage-a 2/3] RUN echo a
    #3 0.123 a
    #3 DONE 0.4s

    #4 [stage-b 2/3] RUN echo b
    #4 CACHED

    #5 [1/2] FROM docker.io/library/busybox:latest
    #5 resolve docker.io/library/busybox:latest@sha256:… done
    #5 sha256:9ad6… 0B / 2.15MB 0.1s
    #5 sha256:9ad6… 2.15MB / 2.15MB 0.4s done
    #5 DONE 0.5s

A status (a blob's transfer) is printed again only when it moved by 5% of its size or
5 seconds passed, and when it completes, as BuildKit's printer does.
Step names and errors quote the Dockerfile: their non-printing characters are escaped.
A step's output is written as the step printed it, as BuildKit does.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TextIO

from ocibuild.errors import printable
from ocibuild.progress.events import Event, is_cancellation

ERROR_TAIL = 10  # output lines repeated in a failure report
STATUS_STEP = 0.05  # of a status's total: the least change printed again
STATUS_WAIT = 5.0  # seconds after which a status is printed again anyway
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def human_bytes(n: int) -> str:
    """Bytes as BuildKit prints them (decimal units): 581B, 1.47kB, 12.58MB."""
    if n < 1000:
        return f"{n}B"
    value = float(n)
    unit = 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value /= 1000
        unit += 1
    return f"{value:.2f}{_UNITS[unit]}"


class PlainRenderer:
    """Renders events as they arrive. Thread-safe; writes whole lines only."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._started: dict[int, float] = {}
        self._tails: dict[int, deque[str]] = {}
        self._last: int | None = None
        self._printed: dict[tuple[int, str], tuple[int, float]] = {}  # status -> last shown
        self.failures: list[tuple[Event, list[str]]] = []

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._render(event)
            self._out.flush()

    def _header(self, event: Event) -> None:
        if self._last is not None:
            self._out.write("\n")
        self._out.write(f"#{event.index} {printable(event.name)}\n")

    def _render(self, event: Event) -> None:
        n = event.index
        if event.kind == "started":
            self._started[n] = event.time
            self._tails[n] = deque(maxlen=ERROR_TAIL)
            self._header(event)
        elif event.kind == "cached":
            self._header(event)
            self._out.write(f"#{n} CACHED\n")
        elif event.kind == "log":
            elapsed = event.time - self._started.get(n, event.time)
            self._tails.setdefault(n, deque(maxlen=ERROR_TAIL)).append(event.text)
            if self._last not in (None, n):
                self._out.write("\n")
            self._out.write(f"#{n} {elapsed:.3f} {event.text}\n")
        elif event.kind == "done":
            elapsed = event.time - self._started.get(n, event.time)
            if self._last not in (None, n):
                self._out.write("\n")
            self._out.write(f"#{n} DONE {elapsed:.1f}s\n")
        elif event.kind == "status":
            if not self._status_due(event):
                return
            if self._last not in (None, n):
                self._out.write("\n")
            self._out.write(f"#{n} {status_line(event)}\n")
        elif event.kind == "failed":
            if self._last not in (None, n):
                self._out.write("\n")
            if is_cancellation(event):
                self._out.write(f"#{n} CANCELED\n")
            else:
                self._out.write(f"#{n} ERROR: {printable(event.text)}\n")
                self.failures.append((event, list(self._tails.get(n, ()))))
        self._last = n

    def _status_due(self, event: Event) -> bool:
        key = (event.index, event.text)
        last = self._printed.get(key)
        if last is not None and not event.completed:
            moved = (event.current - last[0]) / event.total if event.total else 0.0
            if moved < STATUS_STEP and event.time - last[1] < STATUS_WAIT:
                return False
        self._printed[key] = (event.current, event.time)
        return True

    def summary(self) -> str:
        return failure_summary(self.failures)

    def stop(self) -> None:
        """Nothing to end: every line is already written."""

    def closing_text(self, text: str) -> str:
        """The lines `build` prints after the steps, as this display shows them."""
        return text


def status_line(event: Event) -> str:
    """A status as BuildKit's plain printer writes it after `#N `: its id, its bytes
    (done / total), the time since it started, "done" once complete."""
    text = printable(event.text)
    if event.total:
        text += f" {human_bytes(event.current)} / {human_bytes(event.total)}"
    elif event.current:
        text += f" {human_bytes(event.current)}"
    if event.started is not None and event.time - event.started > 0.01:
        text += f" {event.time - event.started:.1f}s"
    return text + " done" if event.completed else text


def failure_summary(failures: list[tuple[Event, list[str]]]) -> str:
    """BuildKit's closing report for each failed step: its name and last output."""
    parts: list[str] = []
    for event, tail in failures:
        lines = ["------", f" > {printable(event.name)}:"]
        lines += [f"{e}" for e in tail]
        lines.append("------")
        parts.append("\n".join(lines))
    return "\n".join(parts)
