"""The streaming half of layer export: tar bytes in, compressed blob out, both hashed.

The caller (tar generation, file reads, diffID hashing) runs in its own thread while a
second thread compresses, hashes the compressed bytes and writes them, so the two overlap
on two cores. Memory is bounded by the queue: a few chunks of CHUNK bytes.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass
from typing import BinaryIO

from ocibuild.oci.compression import make_compressor

CHUNK = 1 << 20
_QUEUE_DEPTH = 8


@dataclass(frozen=True)
class StreamResult:
    digest: str
    diff_id: str
    size: int
    uncompressed_size: int


class LayerSink:
    """Accepts uncompressed tar bytes through `write`; `close` returns the hashes.

    Small writes are gathered into CHUNK-sized pieces before crossing to the compressor
    thread, so per-entry Python work stays small and the queue holds large buffers only.
    """

    def __init__(self, out: BinaryIO, compression: str) -> None:
        self._out = out
        self._compressor = make_compressor(compression)
        self._diff_hash = hashlib.sha256()
        self._blob_hash = hashlib.sha256()
        self._pending = bytearray()
        self._uncompressed = 0
        self._size = 0
        self._error: BaseException | None = None
        self._queue: queue.Queue[bytes | None] = queue.Queue(_QUEUE_DEPTH)
        self._thread = threading.Thread(target=self._compress_loop, name="layer-compress",
                                        daemon=True)
        self._thread.start()
        self._closed = False

    def write(self, data: bytes) -> None:
        if len(data) >= CHUNK:
            self._flush_pending()
            self._send(data)
            return
        self._pending += data
        if len(self._pending) >= CHUNK:
            self._flush_pending()

    def close(self) -> StreamResult:
        """Finish the stream and wait for the compressor; raises what the compressor raised."""
        self._flush_pending()
        self._stop()
        if self._error is not None:
            raise self._error
        return StreamResult(
            digest=f"sha256:{self._blob_hash.hexdigest()}",
            diff_id=f"sha256:{self._diff_hash.hexdigest()}",
            size=self._size,
            uncompressed_size=self._uncompressed,
        )

    def abort(self) -> None:
        """Stop the compressor thread after a failure on the producing side."""
        self._stop()

    def _stop(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

    def _flush_pending(self) -> None:
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            self._send(data)

    def _send(self, data: bytes) -> None:
        if self._error is not None:
            self.abort()
            raise self._error
        self._diff_hash.update(data)
        self._uncompressed += len(data)
        self._queue.put(data)

    def _emit(self, data: bytes) -> None:
        if data:
            self._blob_hash.update(data)
            self._size += len(data)
            self._out.write(data)

    def _compress_loop(self) -> None:
        while True:
            data = self._queue.get()
            if self._error is not None:
                if data is None:
                    return
                continue  # keep draining so the producer never blocks on a full queue
            try:
                if data is None:
                    self._emit(self._compressor.flush())
                    return
                self._emit(self._compressor.compress(data))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the producer thread
                self._error = exc
                if data is None:
                    return
