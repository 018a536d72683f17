"""Errors meant for people: each carries a message and a stable exit status."""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False  # not typing's: errors is imported by everything, keep it light
if TYPE_CHECKING:
    from ocibuild.source_location import SourceLocation


class OcibuildError(Exception):
    """An error the CLI reports as one message (no traceback without --debug). A build
    step's error also has the step's `location` (where the Dockerfile wrote it), for the
    excerpt shown above the message."""

    exit_code: int = 1
    location: SourceLocation | None = None

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


def with_location(exc: OcibuildError, location: SourceLocation | None) -> OcibuildError:
    """`exc`, located at `location` unless it already has a location (a step's error
    keeps the innermost one)."""
    if exc.location is None:
        exc.location = location
    return exc


class UsageError(OcibuildError):
    """Bad command-line input."""

    exit_code = 2


class StoreError(OcibuildError):
    """The local store cannot be used as asked (busy, damaged)."""


class StepFailedError(OcibuildError):
    """A build step (a RUN) whose process failed: `name` is the step ("[2/3] RUN make"),
    `returncode` its exit status (None when it was killed by a signal or cancelled), and
    `tail` the last lines it printed. (`exit_code` stays the CLI's status, 1.)"""

    def __init__(self, name: str, message: str, tail: list[str], *,
                 returncode: int | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.tail = tail
        self.returncode = returncode


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


def terminal_text(text: str) -> str:
    """`text` for a terminal: line breaks and tabs kept, every other non-printing
    character escaped as printable() does (a message quoting a Dockerfile or a step's
    name, with its own lines)."""
    return "\n".join("\t".join(printable(part) for part in line.split("\t"))
                     for line in text.split("\n"))


class DiskFullError(OcibuildError):
    """A write failed for want of space (ENOSPC, EDQUOT, SQLite's "disk is full");
    `filled`: the output whose filesystem filled up, when it was not the store's."""

    def __init__(self, message: str, *, filled: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.filled = filled


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# how the reason reads once a file op in another process turned it into text
_DISK_FULL_TEXTS = tuple(t.lower() for t in (*map(os.strerror, _DISK_FULL_ERRNOS),
                                             "database or disk is full"))


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error it was raised from or while handling, is a full disk."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFullError):
            return True
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
            return True
        # text only in errors that relay another's (SQLite's, a file op's in another
        # process, a plain wrapper), never in those quoting input (a RUN, a Dockerfile)
        if type(exc).__name__ in ("OperationalError", "UsernsCallError") or \
                type(exc) is OcibuildError:
            text = str(exc).lower()
            if any(t in text for t in _DISK_FULL_TEXTS):
                return True
        exc = exc.__cause__ or exc.__context__
    return False


def reason(exc: OSError) -> str:
    """An OSError's reason as a message ends with it ("permission denied")."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def os_error(exc: OSError, doing: str, path: str | os.PathLike[str] | None = None,
             *, error: type[OcibuildError] = OcibuildError) -> OcibuildError:
    """One line for an OSError met while `doing` something to a path ("cannot write"):
    what, the path (`path`, else the error's), the reason; a DiskFullError (`filled`:
    `path`) for a full disk."""
    where = path if path is not None else exc.filename
    text = f"{doing} {os.fsdecode(where)}: {reason(exc)}" if where else \
        f"{doing}: {reason(exc)}"
    if exc.errno in _DISK_FULL_ERRNOS:
        return DiskFullError(text, filled=path)
    return error(text)
