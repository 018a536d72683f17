"""The streaming half of layer export: tar bytes in, compressed blob out, both hashed.

The producer (tar generation, file reads) cuts the tar stream into
blocks of exactly BLOCK bytes, so the compressed bytes never depend on how the stream
was written. Compression runs on other threads (both compressors release the GIL):
zstd with its own worker threads, gzip as independent deflate blocks compressed in a
small thread pool (each primed with the previous block's last 32 KiB, the way pigz and
isal's threaded writer do; a block that does not compress is stored) and joined in
order. The diffID is hashed on a thread of its own, in order. Memory stays bounded: a
few blocks in flight.
"""

from __future__ import annotations

import hashlib
import os
import queue
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import zstandard
from isal import isal_zlib

from ocibuild.deferred import deferred_dataclass
from ocibuild.errors import OcibuildError
from ocibuild.oci.compression import GZIP_LEVEL, ZSTD_LEVEL
from ocibuild.oci.mediatypes import COMPRESSIONS, GZIP, UNCOMPRESSED, ZSTD

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

BLOCK = 1 << 20
# A block's buffer starts this small and grows to BLOCK: most layers are a few KiB, and
# a zeroed MiB costs ~0.8 ms of page faults in the file-op server's forked children.
_FIRST_BUFFER = 64 << 10
PROGRESS_EVERY = 0.1  # seconds between two writes of the progress file
# where the layer being written in this thread reports its bytes (see progress_file)
_progress_path: ContextVar[str | None] = ContextVar("layer_progress_path", default=None)
COMPRESS_THREADS = 2  # neither compressor's output depends on this number
_DEFLATE_WINDOW = 32 * 1024
_SAMPLES, _SAMPLE_BYTES = 4, 4 * 1024  # how _incompressible looks at a block
_STORED_MAX = 0xFFFF  # bytes in one stored deflate block
# gzip header: no flags, mtime 0, no extra flags, OS "unknown"; the same bytes everywhere.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


@deferred_dataclass(frozen=True)
class StreamResult:
    """What streaming a layer wrote: its blob's digest and size and its tar's digest and size."""
    digest: str
    diff_id: str
    size: int
    uncompressed_size: int


class _Encoder(Protocol):
    def feed(self, block: bytearray) -> None: ...

    def finish(self) -> None: ...

    def abort(self) -> None: ...


class _Output:
    """Hashes, counts and writes compressed bytes.

    An output that hashes what it is given (a BlobWriter: `hashed_so_far()`) and holds
    nothing yet is trusted for the digest: sha256 of the compressed stream once, not
    twice, on the producer's thread (~0.15-0.3 s of a 240 MB layer here)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        peer = getattr(out, "hashed_so_far", None)
        self._peer = peer if callable(peer) and peer()[1] == 0 else None
        self._hash = hashlib.sha256() if self._peer is None else None
        self.size = 0

    def write(self, data: bytes) -> None:
        if data:
            if self._hash is not None:
                self._hash.update(data)
            self.size += len(data)
            self._out.write(data)

    @property
    def digest(self) -> str:
        if self._hash is not None:
            return f"sha256:{self._hash.hexdigest()}"
        assert self._peer is not None
        digest, size = self._peer()
        if size != self.size:
            raise OcibuildError(f"layer output: {size - self.size} bytes written to it by "
                                "another writer; its digest is not the layer's")
        return str(digest)


class _Plain:
    def __init__(self, output: _Output) -> None:
        self._output = output

    def feed(self, block: bytearray) -> None:
        self._output.write(block)

    def finish(self) -> None:
        pass

    def abort(self) -> None:
        pass


class _Zstd:
    def __init__(self, output: _Output, level: int | None) -> None:
        self._output = output
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL if level is None else level,
                                              threads=COMPRESS_THREADS)
        self._stream = compressor.compressobj()

    def feed(self, block: bytearray) -> None:
        self._output.write(self._stream.compress(block))

    def finish(self) -> None:
        self._output.write(self._stream.flush())

    def abort(self) -> None:
        pass


def _deflate_block(block: bytearray, zdict: bytes | None, level: int | None
                   ) -> tuple[bytes, int]:
    # the default is isal's fast level; an asked-for level (0..9, as gzip's) uses zlib,
    # whose levels are the ones users know
    if level is None and _incompressible(block):
        return _stored(block), isal_zlib.crc32(block)
    zlib_module: Any = isal_zlib
    if level is not None:
        import zlib as zlib_module
    compress_level = GZIP_LEVEL if level is None else level
    if zdict is None:
        compressor = zlib_module.compressobj(compress_level, zlib_module.DEFLATED, -15)
    else:
        compressor = zlib_module.compressobj(compress_level, zlib_module.DEFLATED, -15,
                                             zdict=zdict)
    data = compressor.compress(block) + compressor.flush(zlib_module.Z_SYNC_FLUSH)
    return data, isal_zlib.crc32(block)


def _incompressible(block: bytearray) -> bool:
    """Whether deflate would leave a full block as it is (random or already compressed
    data: a tarball, a jar, an image): every one of SAMPLES slices spread over it
    compresses to 97% or more. Deflating such a block costs ~2 ms a MiB here and gains
    nothing; storing it costs a copy. A block judged wrongly only loses its own
    compression, and the judgement depends on the bytes alone (reproducible)."""
    if len(block) < BLOCK:
        return False
    step = len(block) // _SAMPLES
    view = memoryview(block)
    for i in range(_SAMPLES):
        sample = view[i * step:i * step + _SAMPLE_BYTES]
        if len(isal_zlib.compress(sample, 1, -15)) < len(sample) * 0.97:
            return False
    return True


def _stored(block: bytearray) -> bytes:
    """`block` as raw deflate "stored" blocks (RFC 1951 3.2.4): each a header byte (not
    final, type 00; the stream is at a byte boundary after every block's sync flush),
    its length and the length's complement, then the bytes as they are."""
    parts: list[bytes | memoryview] = []
    view = memoryview(block)
    for start in range(0, len(block), _STORED_MAX):
        chunk = view[start:start + _STORED_MAX]
        parts.append(struct.pack("<BHH", 0, len(chunk), len(chunk) ^ 0xFFFF))
        parts.append(chunk)
    return b"".join(parts)


class _ParallelGzip:
    """One gzip member made of deflate blocks compressed in parallel, written in order."""

    def __init__(self, output: _Output, level: int | None) -> None:
        self._output = output
        self._level = level
        self._pool: ThreadPoolExecutor | None = None  # started by the first full block
        self._pending: deque[tuple[Future[tuple[bytes, int]], int]] = deque()
        self._zdict: bytes | None = None
        self._crc = 0
        self._length = 0
        output.write(_GZIP_HEADER)

    def feed(self, block: bytearray) -> None:
        if self._pool is None:
            if len(block) < BLOCK:  # the layer's one and only block: no threads for it
                self._write(*_deflate_block(block, self._zdict, self._level), len(block))
                return
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(COMPRESS_THREADS, thread_name_prefix="layer-gzip")
        future = self._pool.submit(_deflate_block, block, self._zdict, self._level)
        self._pending.append((future, len(block)))
        self._zdict = bytes(block[-_DEFLATE_WINDOW:])
        while len(self._pending) > 2 * COMPRESS_THREADS:
            self._write_oldest()

    def finish(self) -> None:
        while self._pending:
            self._write_oldest()
        if self._pool is not None:
            self._pool.shutdown()
        self._output.write(isal_zlib.compress(b"", wbits=-15))  # the final, empty block
        self._output.write(struct.pack("<II", self._crc, self._length & 0xFFFFFFFF))

    def abort(self) -> None:
        for future, _ in self._pending:
            future.cancel()
        if self._pool is not None:
            self._pool.shutdown()

    def _write_oldest(self) -> None:
        future, length = self._pending.popleft()
        self._write(*future.result(), length)

    def _write(self, data: bytes, crc: int, length: int) -> None:
        self._crc = isal_zlib.crc32_combine(self._crc, crc, length)
        self._length += length
        self._output.write(data)


def _encoder(compression: str, output: _Output, level: int | None) -> _Encoder:
    if compression == GZIP:
        return _ParallelGzip(output, level)
    if compression == ZSTD:
        return _Zstd(output, level)
    if compression == UNCOMPRESSED:
        return _Plain(output)
    choices = ", ".join(COMPRESSIONS)
    raise OcibuildError(f"unknown compression {compression!r}; use one of {choices}")


@contextmanager
def progress_file(path: str) -> Iterator[None]:
    """Layers written in this thread meanwhile report "DONE TOTAL" (bytes of tar input)
    in `path`, rewritten at most every PROGRESS_EVERY seconds and once at the end: the
    builder, in another process, reads it (ocibuild.progress.layers) to show the layer's
    progress."""
    token = _progress_path.set(path)
    try:
        yield
    finally:
        _progress_path.reset(token)


class _ProgressFile:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self.total = 0
        self._next = 0.0

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if final or now >= self._next:
            self._next = now + PROGRESS_EVERY
            line = f"{done} {done if final else max(done, self.total)}\n".encode()
            os.pwrite(self._fd, line.ljust(48), 0)

    def close(self) -> None:
        os.close(self._fd)


class _DiffHash:
    """sha256 of the tar stream (the layer's diff ID), taken on a thread of its own once
    the stream outgrows one block: hashlib lets go of the interpreter while it hashes,
    so the producer reads the next files meanwhile (the hash was ~20% of the producer's
    time on a 277 MB layer here). Blocks are hashed in the order given; at most
    `_QUEUED` wait, so memory stays bounded whatever the layer's size."""

    _QUEUED = 4

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytearray | None] | None = None
        self._thread: threading.Thread | None = None

    def update(self, block: bytearray) -> None:
        if len(block) < BLOCK and self._queue is None:  # a layer of one short block
            self._hash.update(block)
            return
        if self._queue is None:
            self._queue = queue.Queue(self._QUEUED)
            self._thread = threading.Thread(target=self._run, name="layer-diff-hash",
                                            daemon=True)
            self._thread.start()
        self._queue.put(block)

    def _run(self) -> None:
        assert self._queue is not None
        while (block := self._queue.get()) is not None:
            self._hash.update(block)

    def stop(self) -> None:
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = self._thread = None

    def hexdigest(self) -> str:
        self.stop()
        return self._hash.hexdigest()


class LayerSink:
    """Accepts uncompressed tar bytes through `write` and `write_from_fd`; `close` returns
    the hashes. File data is read straight into the current block (no extra copy).
    `level` (gzip 0..9, zstd 0..22) replaces the default level of the compressor."""

    def __init__(self, out: BinaryIO, compression: str, level: int | None = None) -> None:
        self._output = _Output(out)
        self._encoder = _encoder(compression, self._output, level)
        self._diff_hash = _DiffHash()
        self._block = bytearray(_FIRST_BUFFER)
        self._fill = 0
        self._uncompressed = 0
        path = _progress_path.get()
        self._progress = _ProgressFile(path) if path is not None else None

    @property
    def reports_progress(self) -> bool:
        return self._progress is not None

    def expect(self, total: int) -> None:
        """The tar input's expected size, for the progress file."""
        if self._progress is not None:
            self._progress.total = total

    def _room(self, wanted: int) -> int:
        """How many of `wanted` bytes the current block takes now, its buffer grown
        for them (never past BLOCK)."""
        n = min(wanted, BLOCK - self._fill)
        short = self._fill + n - len(self._block)
        if short > 0:
            grown = min(BLOCK, max(2 * len(self._block), self._fill + n))
            self._block.extend(bytes(grown - len(self._block)))
        return n

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._room(len(view))
            self._block[self._fill:self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == BLOCK:
                self._feed_block()

    def write_from_fd(self, fd: int, size: int) -> int:
        """Copy up to `size` bytes from a file descriptor; returns how many it had."""
        left = size
        while left:
            n = self._room(left)
            got = os.readv(fd, [memoryview(self._block)[self._fill:self._fill + n]])
            if not got:
                break
            self._fill += got
            left -= got
            if self._fill == BLOCK:
                self._feed_block()
        return size - left

    def close(self) -> StreamResult:
        if self._fill:
            del self._block[self._fill:]
            self._feed_block(last=True)
        self._encoder.finish()
        self._close_progress()
        return StreamResult(
            digest=self._output.digest,
            diff_id=f"sha256:{self._diff_hash.hexdigest()}",
            size=self._output.size,
            uncompressed_size=self._uncompressed,
        )

    def abort(self) -> None:
        """Stop the compressor and hash threads after a failure on the producing side."""
        self._encoder.abort()
        self._diff_hash.stop()
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    def _close_progress(self) -> None:
        if self._progress is not None:
            self._progress.update(self._uncompressed, final=True)
            self._progress.close()
            self._progress = None

    def _feed_block(self, last: bool = False) -> None:
        # The full block goes to the encoder as it is; a fresh one takes its place.
        block = self._block
        self._block = bytearray(0 if last else BLOCK)
        self._fill = 0
        self._diff_hash.update(block)
        self._uncompressed += len(block)
        self._encoder.feed(block)
        if self._progress is not None:
            self._progress.update(self._uncompressed)
