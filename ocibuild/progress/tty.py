"""BuildKit's live terminal progress (`--progress=tty`), drawn with rich:

    [+] Building 2.4s (4/5)
     => CACHED [stage-a 2/3] RUN echo a                                0.0s
     => [stage-b 2/3] RUN make                                         1.9s
     => => # compiling x.c
     => => # compiling y.c
     => [1/2] FROM docker.io/library/busybox:latest                    0.6s
     => => sha256:9ad63333ebc9 1.05MB / 2.15MB ━━━━━━━━━━━━━━━━  1.6MB/s 0.6s

One line per step in the order the steps started, a ticking time on running steps and
the last few lines of their output under them; under a step that moves blobs, a line
per blob with its bytes (a bar and the rate while it runs), as buildx shows them.
`stop()` draws the final frame (every
step, no output windows, "FINISHED" once all ended), leaves it on screen and shows the
cursor again. This module imports rich: import it only when this display is used.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

from ocibuild.errors import printable, terminal_text
from ocibuild.progress import frame
from ocibuild.progress.events import Event, is_cancellation
from ocibuild.progress.plain import ERROR_TAIL, failure_summary, human_bytes

REFRESH_PER_SECOND = 1 / 0.15  # BuildKit redraws every 150 ms
LOG_LINES_DEFAULT = 6  # BuildKit's window of recent output under a running step
BAR_WIDTH = 20
STATUS_PREFIX = " => => "


def log_lines_from_env() -> int:
    """BuildKit's BUILDKIT_TTY_LOG_LINES sets the output window's height."""
    try:
        value = int(os.environ.get("BUILDKIT_TTY_LOG_LINES", ""))
    except ValueError:
        return LOG_LINES_DEFAULT
    return value if value > 0 else LOG_LINES_DEFAULT


@dataclass
class _Step:
    """A step as the live display shows it: its state, times, last log lines and statuses."""
    name: str
    start: float
    end: float | None = None
    state: str = "running"  # running | done | cached | error | canceled
    logs: deque[str] = field(default_factory=lambda: deque(maxlen=ERROR_TAIL))
    statuses: dict[str, _Status] = field(default_factory=dict)  # in the order they came


@dataclass
class _Status:
    """A blob's transfer (or a moment like "resolve REF") under a step."""

    started: float
    current: int = 0
    total: int = 0
    end: float | None = None


class TtyRenderer:
    """A live display of the build on a terminal. Thread-safe sink of progress events;
    call stop() (idempotent) before printing anything else to the terminal."""

    def __init__(self, out: TextIO, *, log_lines: int | None = None) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._begin = time.monotonic()
        self._end: float | None = None
        self._steps: dict[int, _Step] = {}  # in the order the steps appeared
        self._log_lines = log_lines_from_env() if log_lines is None else log_lines
        self.failures: list[tuple[Event, list[str]]] = []
        self._console = Console(file=out, highlight=False, emoji=False, markup=False)
        self._live = Live(get_renderable=self._frame, console=self._console,
                          refresh_per_second=REFRESH_PER_SECOND, redirect_stdout=False,
                          redirect_stderr=True)
        self._live.start(refresh=True)

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._apply(event)

    def _apply(self, event: Event) -> None:
        step = self._steps.get(event.index)
        if step is None:
            step = self._steps[event.index] = _Step(printable(event.name), event.time)
        if event.kind == "started":
            step.start = event.time
        elif event.kind == "cached":
            step.state, step.end = "cached", step.start
        elif event.kind == "status":
            status = step.statuses.get(event.text)
            if status is None:
                status = step.statuses[event.text] = _Status(
                    event.started if event.started is not None else event.time)
            status.current, status.total = event.current, event.total
            if event.completed:
                status.end = event.time
        elif event.kind == "log":
            step.logs.append(terminal_text(event.text))  # drawn over and over
        elif event.kind == "done":
            step.state, step.end = "done", event.time
        elif event.kind == "failed" and is_cancellation(event):
            step.state, step.end = "canceled", event.time
        elif event.kind == "failed":
            step.state, step.end = "error", event.time
            self.failures.append((event, list(step.logs)))

    def stop(self) -> None:
        """End the live display: draw the final frame, leave it, show the cursor. Steps
        still running (an interrupt, or a sibling's failure) are shown CANCELED."""
        with self._lock:
            if self._end is None:
                self._end = time.monotonic()
                for step in self._steps.values():
                    if step.state == "running":
                        step.state, step.end = "canceled", self._end
        self._live.stop()

    def summary(self) -> str:
        return failure_summary(self.failures)

    def closing_text(self, text: str) -> str:
        return text

    def finished_steps(self) -> list[tuple[str, str]]:
        """(state, name) of every step, in the order shown: what the last frame lists."""
        with self._lock:
            return [(step.state, step.name) for step in self._steps.values()]

    def _frame(self) -> _Frame:
        fd = _fileno(self._out)
        if fd is not None:  # the terminal's size, not stdin's (which rich would ask first)
            try:
                size = os.get_terminal_size(fd)
            except OSError:
                size = None
            if size is not None and size.columns > 0 and size.lines > 0:
                self._console.size = size
        return _Frame(self)

    def _lines(self, width: int, height: int) -> Iterator[Text]:
        with self._lock:
            now = self._end if self._end is not None else time.monotonic()
            final = self._end is not None
            steps = list(self._steps.values())
            windows = {id(s): [*_status_lines(s, now, width),
                               *(Text((frame.LOG_PREFIX + line)[:width], style="dim")
                                 for line in (list(s.logs)[-self._log_lines:]
                                              if s.state == "running" and not final else ()))]
                       for s in steps if s.statuses or (s.logs and s.state == "running")}
        ended = sum(s.state != "running" for s in steps)
        header = frame.header(now - self._begin, ended, len(steps),
                              final and ended == len(steps) and bool(steps))
        yield Text(header[:width])
        if not final:
            steps, windows = _fit(steps, windows, height - 2)
        for step in steps:
            yield _step_line(step, now, width)
            yield from windows.get(id(step), ())


class _Frame:
    """What the live display draws at each refresh (rich asks it for its lines)."""

    def __init__(self, renderer: TtyRenderer) -> None:
        self._renderer = renderer

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or console.height
        lines = list(self._renderer._lines(options.max_width, height))
        text = Text("\n").join(lines)
        text.no_wrap = True
        text.overflow = "crop"
        yield text


def _step_line(step: _Step, now: float, width: int) -> Text:
    elapsed = (step.end if step.end is not None else now) - step.start
    return Text(frame.step_line(step.state, step.name, elapsed, width),
                style=frame.STYLES.get(step.state, ""))


def _status_lines(step: _Step, now: float, width: int) -> list[Text]:
    """A line per status of `step`: its id, bytes done / total, while it runs a bar and
    the rate, and its time at the right edge."""
    lines = []
    for status_id, status in list(step.statuses.items()):
        running = status.end is None and step.state == "running"
        elapsed = (status.end if status.end is not None else now) - status.started
        name = printable(status_id)
        if name.startswith("sha256:") and len(name) == 71:
            name = name[:19]  # a blob's digest, shortened as docker shows layer ids
        body = STATUS_PREFIX + name
        if status.total:
            body += f" {human_bytes(status.current)} / {human_bytes(status.total)}"
            if running:
                done = min(status.current / status.total, 1.0)
                filled = round(done * BAR_WIDTH)
                body += " " + "━" * filled + " " * (BAR_WIDTH - filled)
        elif status.current:
            body += f" {human_bytes(status.current)}"
        if running and status.current and elapsed > 0.05:
            body += f" {human_bytes(int(status.current / elapsed))}/s"
        timer = f" {0.0 if elapsed < 0.05 else elapsed:3.1f}s"
        room = max(width - len(timer) - 1, 1)
        lines.append(Text(body[:room].ljust(room) + " " + timer))
    return lines


def _fit(steps: list[_Step], windows: dict[int, list[Text]], rows: int
         ) -> tuple[list[_Step], dict[int, list[Text]]]:
    """What fits in `rows` lines: output windows go first, then the oldest finished
    steps, so that the running ones stay in view (as BuildKit does)."""
    if len(steps) + sum(map(len, windows.values())) <= rows:
        return steps, windows
    kept: dict[int, list[Text]] = {}
    used = len(steps)
    for key, lines in windows.items():
        if used + len(lines) <= rows:
            kept[key] = lines
            used += len(lines)
    extra = used - rows
    if extra <= 0:
        return steps, kept
    shown = []
    for step in steps:
        if extra > 0 and step.state != "running":
            extra -= 1
            continue
        shown.append(step)
    return shown, kept


def _fileno(out: TextIO) -> int | None:
    try:
        return out.fileno()
    except (AttributeError, OSError, ValueError):
        return None
