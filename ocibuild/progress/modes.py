"""`--progress MODE`: which display a build shows, chosen as buildx chooses it.

auto    the live display (tty) when the stream is a terminal, plain text otherwise
        (or the mode BUILDKIT_PROGRESS names, as in buildx)
tty     the live display; an error when the stream is not a terminal
plain   BuildKit's plain text, for logs
rawjson one JSON object per line (`json` is accepted as another name for it)
quiet   nothing
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol, TextIO

from ocibuild.errors import OcibuildError

if TYPE_CHECKING:
    from ocibuild.progress.events import Event

MODES = ("auto", "plain", "tty", "rawjson", "json", "quiet")


class Renderer(Protocol):
    """A progress display: a thread-safe sink of events with a failure report."""

    failures: list[tuple[Event, list[str]]]

    def __call__(self, event: Event) -> None: ...

    def stop(self) -> None:
        """End the display (idempotent): after it, the stream is the caller's again."""

    def summary(self) -> str:
        """The report of the failed steps, printed after stop() ("" for none)."""

    def closing_text(self, text: str) -> str:
        """The lines printed once the build is done, as this display shows them."""


def is_terminal(stream: TextIO) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def resolve(mode: str, stream: TextIO) -> str:
    """The display `mode` means on `stream`: plain, tty, rawjson or quiet. As in buildx,
    BUILDKIT_PROGRESS names the mode that auto stands for."""
    if mode == "auto":
        mode = os.environ.get("BUILDKIT_PROGRESS") or "auto"
    if mode == "auto":
        return "tty" if is_terminal(stream) else "plain"
    if mode == "tty" and not is_terminal(stream):
        raise OcibuildError("--progress tty: failed to get console: stderr is not a terminal "
                            "(use --progress auto or plain)")
    if mode == "json":
        return "rawjson"
    if mode not in MODES:
        raise OcibuildError(f"invalid progress mode {mode}")
    return mode


def open_renderer(mode: str, stream: TextIO) -> Renderer | None:
    """The display of `mode` (as resolve() reads it) writing to `stream`; None for
    quiet. The live display starts drawing at once: stop() it when the build ends."""
    resolved = resolve(mode, stream)
    if resolved == "plain":
        from ocibuild.progress.plain import PlainRenderer

        return PlainRenderer(stream)
    if resolved == "tty":
        from ocibuild.progress.tty import TtyRenderer  # imports rich: only here

        return TtyRenderer(stream)
    if resolved == "rawjson":
        from ocibuild.progress.rawjson import RawJsonRenderer

        return RawJsonRenderer(stream)
    return None
