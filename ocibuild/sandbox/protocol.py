"""Messages between the builder and its sandbox helper processes on Unix sockets.

A message is one kind byte, a 4-byte big-endian length and a payload. The two
directions are not equally trusted:

- builder -> helper (START, CONFIG, MAPPED, MAPPING_FAILED) carries dictionaries the
  builder made; the payload is marshal (fast to import and to decode in the helper).
- helper -> builder carries what a helper process says about a step. Those processes
  live beside hostile code, so these payloads are plain text of a fixed form per kind
  (a decimal integer, UTF-8 text, or NUL-separated root-relative paths) and the
  builder parses them strictly (parse_* below), never with marshal or pickle. A
  message longer than MAX_MESSAGE ends the conversation.
"""

from __future__ import annotations

import marshal
import os

from ocibuild.sandbox.errors import SandboxError

NEED_MAPPING = "M"  # helper -> builder: write my uid/gid maps now
MAPPED = "G"  # builder -> helper: maps written, go on
MAPPING_FAILED = "F"  # builder -> helper: give up
CREATED = "C"  # helper -> builder: paths (relative to the root) made as mount points
STEP_PGID = "P"  # helper -> builder: process group of a step without a PID namespace
EXITED = "X"  # helper -> builder: the step's wait status
ERROR = "E"  # helper -> builder: set-up failed, payload is a message for people
RESULT = "R"  # helper -> builder: JSON text returned by run_in_userns
START = "S"  # builder -> fork server: isolation and id mapping to set up once
READY = "Y"  # fork server -> builder: set up, send spawn requests now
CONFIG = "K"  # builder -> step process: the step's configuration
SPAWN = b"N"  # builder -> fork server: one byte carrying the step's fds (ctl, stdout, stderr)

MAX_MESSAGE = 16 << 20
MAX_CREATED = 4096  # mount points a step's set-up can have made
MAX_STATUS = 0xFFFF  # a wait status fits in 16 bits

_HEAD = 5


class ProtocolError(SandboxError):
    """A message that is not of its kind's form, or does not fit the conversation."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the sandbox helper sent a malformed message ({reason})")


# ---- helper -> builder: text ----------------------------------------------------------


def encode_text(kind: str, value: str | int | list[str] | None = None) -> bytes:
    if value is None:
        data = b""
    elif isinstance(value, list):
        data = "\0".join(value).encode("utf-8", "surrogateescape")
    else:
        data = str(value).encode("utf-8", "surrogateescape")
    return kind.encode() + len(data).to_bytes(4, "big") + data


def send(fd: int, kind: str, value: str | int | list[str] | None = None) -> None:
    view = memoryview(encode_text(kind, value))
    while view:
        view = view[os.write(fd, view):]


def parse_int(payload: bytes, limit: int) -> int:
    if not payload or len(payload) > 10 or not payload.isdigit():
        raise ProtocolError(f"not a decimal number: {payload[:20]!r}")
    value = int(payload)
    if value > limit:
        raise ProtocolError(f"number out of range: {value}")
    return value


def parse_text(payload: bytes) -> str:
    return payload.decode("utf-8", "replace")


def parse_relative_paths(payload: bytes) -> list[str]:
    """NUL-separated paths, each relative and made only of plain names: no empty, '.' or
    '..' component, no leading '/'. Anything else is refused whole."""
    if not payload:
        return []
    try:
        paths = payload.decode("utf-8").split("\0")
    except UnicodeDecodeError as e:
        raise ProtocolError("a path is not UTF-8") from e
    if len(paths) > MAX_CREATED:
        raise ProtocolError(f"{len(paths)} paths (at most {MAX_CREATED})")
    for path in paths:
        if any(part in ("", ".", "..") for part in path.split("/")):
            raise ProtocolError(f"not a plain relative path: {path[:200]!r}")
    return paths


# ---- builder -> helper: marshal ---------------------------------------------------------


def encode(kind: str, payload: object) -> bytes:
    data = marshal.dumps(payload)
    return kind.encode() + len(data).to_bytes(4, "big") + data


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks = b""
    while len(chunks) < size:
        part = os.read(fd, size - len(chunks))
        if not part:
            return None
        chunks += part
    return chunks


def _receive_raw(fd: int) -> tuple[str, bytes] | None:
    head = _read_exact(fd, _HEAD)
    if head is None:
        return None
    size = int.from_bytes(head[1:], "big")
    if size > MAX_MESSAGE:
        raise ProtocolError(f"a message of {size} bytes")
    body = _read_exact(fd, size)
    if body is None:
        return None
    return chr(head[0]), body


def receive_from_builder(fd: int) -> tuple[str, object] | None:
    """Helper side: block for one message the builder sent; None at end of stream."""
    message = _receive_raw(fd)
    if message is None:
        return None
    return message[0], marshal.loads(message[1])


def receive(fd: int) -> tuple[str, bytes] | None:
    """Builder side: block for one message from a helper, payload undecoded (parse it
    with the parse_* function of its kind); None at end of stream."""
    return _receive_raw(fd)


class Decoder:
    """Builder side: splits a helper's byte stream read in arbitrary pieces into
    (kind, undecoded payload) messages."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self._buffer += data
        out = []
        while len(self._buffer) >= _HEAD:
            size = int.from_bytes(self._buffer[1:_HEAD], "big")
            if size > MAX_MESSAGE:
                raise ProtocolError(f"a message of {size} bytes")
            if len(self._buffer) < _HEAD + size:
                break
            out.append((chr(self._buffer[0]), self._buffer[_HEAD:_HEAD + size]))
            self._buffer = self._buffer[_HEAD + size:]
        return out
