"""Errors of the Dockerfile frontend.

`DockerfileError(message, filename=, line=, column=, source_line=)` is raised by
every stage of the frontend for a bad Dockerfile. Its `message` reads
``FILE:LINE:COL: message``; `render()` adds the offending line and a caret under
the column, which is what the CLI prints.

`ShellExpansionError` is raised by `shell` for a word that cannot be expanded
(it has no location: the caller knows the instruction and wraps it with
`DockerfileError.at`).
"""

from __future__ import annotations

from ocibuild.errors import OcibuildError, printable


class ShellExpansionError(OcibuildError):
    """A word that BuildKit's shell lexer rejects (bad substitution, open quote...)."""


class DockerfileError(OcibuildError):
    """A Dockerfile that cannot be parsed or whose instruction is invalid."""

    def __init__(
        self,
        message: str,
        *,
        filename: str = "Dockerfile",
        line: int = 0,
        column: int = 0,
        end_line: int | None = None,
        source_line: str | None = None,
    ) -> None:
        self.reason = message
        self.filename = filename
        self.line = line
        self.column = column
        self.end_line = line if end_line is None else end_line
        self.source_line = source_line
        super().__init__(self._located())

    def _located(self) -> str:
        if self.line <= 0:
            return f"{self.filename}: {self.reason}"
        return f"{self.filename}:{self.line}:{max(self.column, 1)}: {self.reason}"

    def render(self) -> str:
        """The message, then the offending line and a caret under the column."""
        text = self._located()
        if self.source_line is None or self.line <= 0:
            return text
        line = self.source_line.rstrip("\r\n").expandtabs(1)
        # escaped as the terminal will show it, the caret still under its column
        before = printable(line[:max(self.column, 1) - 1])
        return f"{text}\n{printable(line)}\n{' ' * len(before)}^"
