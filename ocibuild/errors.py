"""Errors meant for people: each carries a message and a stable exit status."""

from __future__ import annotations


class OcibuildError(Exception):
    """An error the CLI reports as one message (no traceback without --debug)."""

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def render(self) -> str:
        """What the CLI prints for this error (subclasses may add context)."""
        return f"ocibuild: error: {self.message}"


class UsageError(OcibuildError):
    """Bad command-line input."""

    exit_code = 2


class DigestMismatchError(OcibuildError):
    """Bytes whose sha256 differs from the digest that named them."""


class UnsafeLayerError(OcibuildError):
    """A layer entry that would land outside the target root."""


_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def printable(text: str) -> str:
    """`text` with every non-printing character escaped (`\\x1b`, `\\n`, `\\u202e`), for
    messages that quote input (a registry's error body, a Dockerfile line): a terminal
    must never receive an escape sequence, a bell or a line break from it."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        else:
            out.append(repr(ch)[1:-1] if ord(ch) > 0xFF else f"\\x{ord(ch):02x}")
    return "".join(out)
