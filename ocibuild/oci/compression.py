"""Layer compression: levels, detection from magic bytes, streaming decompression.

The compressor, its version (pinned in constraints.txt) and its level decide the bytes of
every layer, and so its digest: change none of them casually.
"""

from __future__ import annotations

import io
from typing import BinaryIO

import zstandard
from isal import igzip, isal_zlib

from ocibuild.errors import OcibuildError
from ocibuild.oci.mediatypes import GZIP, UNCOMPRESSED, ZSTD

# isal levels go 0..3; level 1 keeps gzip export above 200 MB/s on this kind of machine.
GZIP_LEVEL = 1
ZSTD_LEVEL = 3

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_MAGIC_LEN = 4


def detect(head: bytes) -> str:
    """The compression of a stream from its first bytes: "gzip", "zstd" or "none"."""
    if head.startswith(_GZIP_MAGIC):
        return GZIP
    if head.startswith(_ZSTD_MAGIC):
        return ZSTD
    return UNCOMPRESSED


class _Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read: gives them back, then the rest."""

    def __init__(self, head: bytes, src: BinaryIO) -> None:
        self._head = head
        self._src = src

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buf).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._src.read(len(view))
        n = len(data)
        view[:n] = data
        return n

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._src.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._src.read(size)


class _ErrorTranslating(io.RawIOBase):
    """Turns a decompressor's own exceptions into an OcibuildError for people."""

    def __init__(self, inner: BinaryIO, compression: str) -> None:
        self._inner = inner
        self._compression = compression

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._inner.read(size)
        except (EOFError, isal_zlib.error, zstandard.ZstdError, igzip.BadGzipFile) as exc:
            raise OcibuildError(f"layer is not a valid {self._compression} stream: {exc}") from exc

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buf))
        memoryview(buf).cast("B")[: len(data)] = data
        return len(data)


def open_uncompressed(src: BinaryIO) -> BinaryIO:
    """The uncompressed bytes of `src`, whose compression (gzip, zstd, none) is found from
    its magic bytes, never from a media type."""
    head = b""
    while len(head) < _MAGIC_LEN:
        more = src.read(_MAGIC_LEN - len(head))
        if not more:
            break
        head += more
    kind = detect(head)
    stream: BinaryIO = _Prefixed(head, src)  # type: ignore[assignment]
    if kind == GZIP:
        inner: BinaryIO = igzip.IGzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
    elif kind == ZSTD:
        inner = zstandard.ZstdDecompressor().stream_reader(
            stream, read_across_frames=True, closefd=False
        )
    else:
        return stream
    return _ErrorTranslating(inner, kind)  # type: ignore[return-value]


_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_TAR_MAGIC_AT = 257  # "ustar" in a POSIX tar header


def open_archive(src: BinaryIO) -> tuple[BinaryIO, bool]:
    """An archive as ADD and `build -` read it: (its uncompressed bytes, whether it is
    one). gzip, zstd, bzip2 and xz are archives; an uncompressed stream is one when it
    starts with a POSIX tar header. Nothing is consumed that the returned stream does
    not give back."""
    head = b""
    while len(head) < _TAR_MAGIC_AT + 5:
        more = src.read(_TAR_MAGIC_AT + 5 - len(head))
        if not more:
            break
        head += more
    stream: BinaryIO = _Prefixed(head, src)  # type: ignore[assignment]
    if head.startswith(_BZIP2_MAGIC):
        import bz2

        return bz2.BZ2File(stream), True  # type: ignore[return-value]
    if head.startswith(_XZ_MAGIC):
        import lzma

        return lzma.LZMAFile(stream), True  # type: ignore[return-value]
    if detect(head) != UNCOMPRESSED:
        return open_uncompressed(stream), True
    return stream, head[_TAR_MAGIC_AT:_TAR_MAGIC_AT + 5] == b"ustar"


def compression_of(src: BinaryIO) -> str:
    """Read the first bytes of a seekable stream to name its compression, then rewind."""
    pos = src.tell()
    head = src.read(_MAGIC_LEN)
    src.seek(pos)
    return detect(head)
