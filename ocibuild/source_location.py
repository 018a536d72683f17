"""Where a build step was written, and the excerpt of the Dockerfile shown above the
error of a step that failed.

The frontend puts a `SourceLocation` on each op it makes from an instruction (not in the
op's digest); the solver puts the op's on the error of the step; the CLI prints the
excerpt before the error, as BuildKit prints a failed vertex's source:

    Dockerfile:3
    --------------------
       1 |     FROM busybox
       2 |
       3 | >>> RUN false
    --------------------

The instruction's lines are marked `>>>`; around them are two lines of context each side
for a one-line instruction, one each side for a longer one (BuildKit's padding).
"""

from __future__ import annotations

from dataclasses import field

from ocibuild.deferred import deferred_dataclass

_RULE = "-" * 20


@deferred_dataclass(frozen=True)
class SourceLocation:
    """The file's name, the instruction's first and last line (from 1), and the file's
    lines (for the excerpt; BuildKit's SourceInfo and Range)."""

    filename: str
    start: int
    end: int
    lines: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def excerpt(self) -> str:
        """The location and the lines around it, the instruction's marked; only the
        location when the file's lines are not known."""
        # as the file split at each newline: after a last newline, one empty line
        lines = [*self.lines, ""] if self.lines and self.lines[-1].endswith("\n") \
            else list(self.lines)
        if not 0 < self.start <= len(lines):
            return f"{self.filename}:{self.start}"
        from ocibuild.errors import printable

        end = min(max(self.end, self.start), len(lines))
        pad = 4 if end == self.start else 2
        first, last, padded = self.start, end, 0
        while padded < pad:  # BuildKit's loop: a step each side, then one more count
            if first > 1:
                first, padded = first - 1, padded + 1
            if last < len(lines):
                last, padded = last + 1, padded + 1
            padded += 1
        shown = [f"{self.filename}:{self.start}", _RULE]
        for number in range(first, last + 1):
            mark = ">>>" if self.start <= number <= end else "   "
            line = printable(lines[number - 1].rstrip("\r\n"))
            shown.append(f" {number:>3} | {mark} {line}")
        shown.append(_RULE)
        return "\n".join(shown)
