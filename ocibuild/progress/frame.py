"""The lines of BuildKit's terminal display, as text: the live display (tty.py, on rich)
styles them, and the rebuild memo prints a finished build's last frame from them
without loading rich. Import-light on purpose."""

from __future__ import annotations

from ocibuild.errors import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

PREFIX = " => "
LOG_PREFIX = " => => # "
STYLES = {"done": "blue", "cached": "blue", "error": "red", "canceled": "yellow"}
LABELS = {"cached": "CACHED ", "error": "ERROR ", "canceled": "CANCELED "}
_SGR = {"blue": "34", "red": "31", "yellow": "33", "dim": "2"}


def header(elapsed: float, ended: int, total: int, finished: bool) -> str:
    text = f"[+] Building {elapsed:.1f}s ({ended}/{total})"
    return text + " FINISHED" if finished else text


def step_line(state: str, name: str, elapsed: float, width: int) -> str:
    """A step's line, `width` columns at most: its label and name, then its time at the
    right edge."""
    timer = f" {0.0 if elapsed < 0.05 else elapsed:3.1f}s"
    room = max(width - len(timer) - 1, 1)
    body = (PREFIX + LABELS.get(state, "") + printable(name.replace("\t", " ")))[:room]
    return body.ljust(room) + " " + timer


def styled(text: str, style: str) -> str:
    """`text` in a terminal's colours (ANSI SGR), as the live display draws it."""
    code = _SGR.get(style)
    return f"\x1b[{code}m{text}\x1b[0m" if code else text


def finished_frame(steps: Sequence[tuple[str, str]], elapsed: float, width: int) -> str:
    """The last frame of a build whose steps all ended: (state, name) each, in order."""
    lines = [header(elapsed, len(steps), len(steps), bool(steps))[:width]]
    lines += [styled(step_line(state, name, 0.0, width), STYLES.get(state, ""))
              for state, name in steps]
    return "\n".join(lines) + "\n"
