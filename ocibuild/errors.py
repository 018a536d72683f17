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
