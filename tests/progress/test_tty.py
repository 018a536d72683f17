"""The live display on a real pseudo-terminal, as a terminal emulator draws it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from ocibuild.progress import Event
from ocibuild.progress.tty import TtyRenderer
from tests.progress.terminal import Terminal

RUN = "[app 2/3] RUN make"
FAIL = "[app 3/3] RUN make test"
BASE = "[app 1/3] FROM busybox:latest"


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Terminal]:
    monkeypatch.setenv("TERM", "xterm")
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "BUILDKIT_TTY_LOG_LINES"):
        monkeypatch.delenv(name, raising=False)
    term = Terminal(columns=80, rows=30)
    yield term
    term.close_slave()


def _renderer(term: Terminal) -> TtyRenderer:
    return TtyRenderer(term.open_slave())


def test_running_steps_tick_and_show_their_latest_output(terminal: Terminal) -> None:
    r = _renderer(terminal)
    try:
        r(Event("cached", 1, BASE))
        r(Event("started", 2, RUN))
        for i in range(10):
            r(Event("log", 2, RUN, text=f"compiling unit {i}"))
        first = terminal.wait_for(lambda s: "compiling unit 9" in s, timeout=5)
        # BuildKit's window: the last six lines of output, under the step's line
        assert "compiling unit 3" not in first and "compiling unit 4" in first
        lines = first.splitlines()
        assert re.fullmatch(r"\[\+\] Building \d+\.\ds \(1/2\)", lines[0])
        assert re.fullmatch(r" => CACHED \[app 1/3\] FROM busybox:latest +0\.0s", lines[1])
        assert lines[2].startswith(" => [app 2/3] RUN make ")
        assert lines[3:9] == [f" => => # compiling unit {i}" for i in range(4, 10)]
        assert terminal.cursor_hidden()  # while the display is live
        tick = _seconds(lines[2])
        later = terminal.wait_for(lambda s: _seconds(_line_of(s, RUN)) >= tick + 0.3,
                                  timeout=5)
        assert "compiling unit 9" in later  # still running: still shown
    finally:
        r.stop()


def test_the_final_frame_stays_with_every_state_and_the_cursor_shown(
        terminal: Terminal) -> None:
    r = _renderer(terminal)
    r(Event("cached", 1, BASE, time=100.0))
    r(Event("started", 2, RUN, time=100.0))
    r(Event("log", 2, RUN, time=100.1, text="built"))
    r(Event("done", 2, RUN, time=101.25))
    r(Event("started", 3, FAIL, time=101.3))
    for i in range(12):
        r(Event("log", 3, FAIL, time=101.4, text=f"test {i} failed"))
    r(Event("failed", 3, FAIL, time=102.0,
            text='process "/bin/sh -c make test" did not complete successfully: exit code: 2'))
    r.stop()
    r.stop()  # idempotent: the CLI stops it on every way out
    terminal.finish()
    screen = terminal.text().splitlines()
    assert re.fullmatch(r"\[\+\] Building \d+\.\ds \(3/3\) FINISHED", screen[0])
    assert re.fullmatch(r" => CACHED \[app 1/3\] FROM busybox:latest +0\.0s", screen[1])
    assert re.fullmatch(r" => \[app 2/3\] RUN make +1\.2s", screen[2])
    assert re.fullmatch(r" => ERROR \[app 3/3\] RUN make test +0\.7s", screen[3])
    assert len(screen) == 4  # the final frame has no output windows
    assert terminal.colour_of("CACHED") == "blue"
    assert terminal.colour_of("[app 2/3]") == "blue"  # done: BuildKit's blue
    assert terminal.colour_of("ERROR") == "red"
    assert not terminal.cursor_hidden()
    summary = r.summary().splitlines()
    assert summary[:2] == ["------", f" > {FAIL}:"]
    assert summary[2:-1] == [f"test {i} failed" for i in range(2, 12)]


def test_steps_still_running_when_it_stops_are_shown_canceled(terminal: Terminal) -> None:
    r = _renderer(terminal)
    r(Event("started", 2, RUN))
    r(Event("log", 2, RUN, text="half way"))
    time.sleep(0.2)
    r.stop()
    terminal.finish()
    screen = terminal.text().splitlines()
    assert re.fullmatch(r"\[\+\] Building \d+\.\ds \(1/1\) FINISHED", screen[0])
    assert screen[1].startswith(" => CANCELED [app 2/3] RUN make ")
    assert terminal.colour_of("CANCELED") == "brown"  # pyte's name of SGR 33, yellow
    assert "half way" not in terminal.text()
    assert not terminal.cursor_hidden()


def test_a_step_the_build_killed_is_canceled_not_a_failure(terminal: Terminal) -> None:
    r = _renderer(terminal)
    r(Event("started", 2, RUN, time=10.0))
    r(Event("started", 3, FAIL, time=10.0))
    r(Event("failed", 3, FAIL, time=10.5, text="exit code: 1"))
    r(Event("failed", 2, RUN, time=10.6,
            text='process "/bin/sh -c make" did not complete successfully: exit code: cancelled'))
    r.stop()
    terminal.finish()
    screen = terminal.text().splitlines()
    assert screen[1].startswith(" => CANCELED [app 2/3] RUN make ")
    assert screen[2].startswith(" => ERROR [app 3/3] RUN make test ")
    assert [event.name for event, _ in r.failures] == [FAIL]


def test_a_long_build_keeps_the_running_steps_in_view(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    term = Terminal(columns=60, rows=8)
    r = _renderer(term)
    try:
        for i in range(1, 12):
            r(Event("cached", i, f"[s {i}/13] RUN step {i}"))
        r(Event("started", 12, "[s 12/13] RUN still going"))
        r(Event("log", 12, "[s 12/13] RUN still going", text="working"))
        text = term.wait_for(lambda s: "still going" in s, timeout=5)
        assert text.splitlines()[0].startswith("[+] Building")
        assert "step 1 " not in text  # the oldest finished steps gave their rows
    finally:
        r.stop()
        term.close_slave()


def _line_of(screen: str, name: str) -> str:
    return next(line for line in screen.splitlines() if name + " " in line)


def _seconds(line: str) -> float:
    return float(line.split()[-1].rstrip("s"))
