"""Messages between the runner and its helper process on a Unix socket pair.

A message is one kind byte, a 4-byte big-endian length and a marshal payload (both
ends run the same interpreter, and marshal imports fast, unlike json).
"""

from __future__ import annotations

import marshal
import os

NEED_MAPPING = "M"  # helper -> runner: write my uid/gid maps now
MAPPED = "G"  # runner -> helper: maps written, go on
MAPPING_FAILED = "F"  # runner -> helper: give up
CREATED = "C"  # helper -> runner: paths (relative to the root) made as mount points
STEP_PGID = "P"  # helper -> runner: process group of a step without a PID namespace
EXITED = "X"  # helper -> runner: the step's wait status
ERROR = "E"  # helper -> runner: set-up failed, payload is a message for people
RESULT = "R"  # helper -> runner: return value of run_in_userns
START = "S"  # runner -> fork server: isolation and id mapping to set up once
READY = "Y"  # fork server -> runner: set up, send spawn requests now
CONFIG = "K"  # runner -> step process: the step's configuration
SPAWN = b"N"  # runner -> fork server: one byte carrying the step's fds (ctl, stdout, stderr)


def encode(kind: str, payload: object) -> bytes:
    data = marshal.dumps(payload)
    return kind.encode() + len(data).to_bytes(4, "big") + data


def send(fd: int, kind: str, payload: object = None) -> None:
    view = memoryview(encode(kind, payload))
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks = b""
    while len(chunks) < size:
        part = os.read(fd, size - len(chunks))
        if not part:
            return None
        chunks += part
    return chunks


def receive(fd: int) -> tuple[str, object] | None:
    """Block for one message; None at end of stream."""
    head = _read_exact(fd, 5)
    if head is None:
        return None
    body = _read_exact(fd, int.from_bytes(head[1:], "big"))
    if body is None:
        return None
    return head[:1].decode(), marshal.loads(body)


class Decoder:
    """Splits a byte stream read in arbitrary pieces into messages."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[str, object]]:
        self._buffer += data
        out = []
        while len(self._buffer) >= 5:
            size = int.from_bytes(self._buffer[1:5], "big")
            if len(self._buffer) < 5 + size:
                break
            out.append((self._buffer[:1].decode(), marshal.loads(self._buffer[5:5 + size])))
            self._buffer = self._buffer[5 + size:]
        return out
