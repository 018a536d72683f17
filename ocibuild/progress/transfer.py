"""Progress of transfers (pulls, pushes, copies) as status events under a step.

A `StepProgress` is one step (vertex) of the display: a build's FROM step, or the
single step of `ocibuild pull` / `push`. Each blob moved under it is a `Transfer`,
which reports its bytes as "status" events, at most every THROTTLE seconds (and once
more when it ends), so that a fast transfer costs a clock read per chunk:

    step = StepProgress(sink, 1, "pull docker.io/library/busybox:latest")
    step.start()
    with step.transfer(desc.digest, desc.size) as blob:
        for chunk in ...:
            blob.advance(len(chunk))
    step.done()

Import-light: only the standard library, so a cached build loads nothing more.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import IO, BinaryIO, cast

from ocibuild.errors import OcibuildError
from ocibuild.oci.digest import of_bytes
from ocibuild.progress.events import Event, EventKind, Sink

THROTTLE = 0.1  # seconds between two updates of one transfer (10 a second at most)

class StepProgress:
    """Where one step's events go: `sink` (thread-safe), as step `index` named `name`;
    `digest` is its vertex id (by default one made of the index and the name)."""

    def __init__(self, sink: Sink | None, index: int, name: str, digest: str = "") -> None:
        self.sink = sink
        self.index = index
        self.name = name
        self.digest = digest or of_bytes(f"{index}\n{name}".encode())

    def emit(self, kind: EventKind, **fields: object) -> None:
        if self.sink is not None:
            self.sink(Event(kind, self.index, self.name, time.monotonic(),
                            digest=self.digest, **fields))  # type: ignore[arg-type]

    def start(self) -> None:
        self.emit("started")

    def done(self) -> None:
        self.emit("done")

    def failed(self, message: str) -> None:
        self.emit("failed", text=message)

    @contextmanager
    def running(self) -> Iterator[StepProgress]:
        """The step started for the block, then done, or failed with its error."""
        self.start()
        try:
            yield self
        except OcibuildError as exc:
            self.failed(exc.message)
            raise
        self.done()

    @contextmanager
    def failing(self) -> Iterator[None]:
        """The step shown failed when the block raises an OcibuildError (which goes on)."""
        try:
            yield
        except OcibuildError as exc:
            self.failed(exc.message)
            raise

    def status(self, status_id: str) -> None:
        """A status with no bytes that is over as soon as it is said ("resolve REF")."""
        now = time.monotonic()
        self.emit("status", text=status_id, started=now, completed=True)

    def transfer(self, status_id: str, total: int, estimated: bool = False) -> Transfer:
        return Transfer(self, status_id, total, estimated)


EXPORT_NAME = "exporting to image"


def export_step(sink: Sink | None, index: int) -> StepProgress:
    """The step a build's file outputs and push are shown under, BuildKit's "exporting
    to image" (the vertex rawjson's closing lines go to as well)."""
    return StepProgress(sink, index, EXPORT_NAME,
                        of_bytes(EXPORT_NAME.encode()))


class Transfer:
    """One blob's bytes under a step. Used by one thread at a time; `finish()` (or
    leaving its `with` block without an error) reports it complete."""

    def __init__(self, step: StepProgress, status_id: str, total: int,
                 estimated: bool = False) -> None:
        self.step = step
        self.id = status_id
        self.total = total
        self.estimated = estimated  # the total is a guess: the end sets it to the bytes
        self.current = 0
        self.started = time.monotonic()
        self._next = self.started + THROTTLE
        self._report()

    def advance(self, n: int) -> None:
        self.current += n
        now = time.monotonic()
        if now >= self._next:
            self._next = now + THROTTLE
            self._report()

    def restart(self, offset: int = 0) -> None:
        """The transfer goes on from `offset` (a resumed or restarted download)."""
        self.current = offset

    def finish(self) -> None:
        if self.estimated:
            self.total = self.current
        self._report(completed=True)

    def _report(self, completed: bool = False) -> None:
        self.step.emit("status", text=self.id, current=self.current, total=self.total,
                       started=self.started, completed=completed)

    def __enter__(self) -> Transfer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.finish()


class CountingWriter:
    """A binary stream that reports what is written through it to a Transfer (a tar
    being written as an output)."""

    def __init__(self, out: IO[bytes], shown: Transfer | None) -> None:
        self._out = out
        self._shown = shown

    def write(self, data: bytes) -> int:
        n = self._out.write(data)
        if self._shown is not None:
            self._shown.advance(len(data))
        return n

    def flush(self) -> None:
        self._out.flush()


def counting(out: IO[bytes], shown: Transfer) -> BinaryIO:
    """`out`, reporting the bytes written through it to `shown`."""
    return cast(BinaryIO, CountingWriter(out, shown))
