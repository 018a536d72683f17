"""A streaming tar reader that trusts nothing it reads.

It understands ustar, PAX (`x`/`g`, with SCHILY.xattr.*) and GNU long names (`L`/`K`),
caps the size of every metadata record it buffers, never seeks, and reads member data
only as the caller asks for it, so a header that claims more data than the stream holds
fails at the point the data runs out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from ocibuild.errors import OcibuildError

BLOCK = 512
CHUNK = 1 << 20
MAX_METADATA = 1 << 20  # PAX records or a GNU long name larger than this is hostile

REGULAR_TYPES = (b"0", b"\0", b"7")
KNOWN_TYPES = (*REGULAR_TYPES, b"1", b"2", b"3", b"4", b"5", b"6")


class TarFormatError(OcibuildError):
    """A tar stream that is truncated, corrupt or uses a feature we refuse."""


@dataclass
class Member:
    """A tar archive's entry as read: its header fields, PAX records applied."""
    name: str  # as stored (decoded from UTF-8, undecodable bytes kept as surrogates)
    typeflag: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: str
    devmajor: int
    devminor: int
    xattrs: dict[str, bytes] = field(default_factory=dict)

    @property
    def is_regular(self) -> bool:
        return self.typeflag in REGULAR_TYPES


class HashingSource:
    """Buffered reads from a stream, hashing every byte that comes out of it."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self._hash = hashlib.sha256()
        self._buf = b""
        self._pos = 0
        self.offset = 0

    def read(self, n: int) -> bytes:
        """Up to n bytes; b"" only at the end of the stream."""
        if self._pos < len(self._buf):
            data = self._buf[self._pos:self._pos + n]
            self._pos += len(data)
        elif n >= CHUNK:
            data = self._src.read(n)
            self._hash.update(data)
        else:
            self._buf = self._src.read(CHUNK)
            self._hash.update(self._buf)
            data = self._buf[:n]
            self._pos = len(data)
        self.offset += len(data)
        return data

    def read_exact(self, n: int) -> bytes:
        parts = []
        left = n
        while left:
            data = self.read(left)
            if not data:
                break
            parts.append(data)
            left -= len(data)
        return b"".join(parts)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return f"sha256:{self._hash.hexdigest()}"


class TarReader:
    """Iterates over members; between iterations the caller may `read` the current
    member's data in chunks. Unread data is skipped before the next header."""

    def __init__(self, src: HashingSource) -> None:
        self._src = src
        self._left = 0  # unread data bytes of the current member
        self._pad = 0
        self._current = ""

    def __iter__(self) -> Iterator[Member]:
        while True:
            self._skip_rest()
            member = self._next()
            if member is None:
                return
            self._current = member.name
            if member.is_regular or member.typeflag not in KNOWN_TYPES:
                self._left = member.size
                self._pad = -member.size % BLOCK
            yield member

    def read(self, n: int = CHUNK) -> bytes:
        """Up to n bytes of the current member's data; b"" when it is all read."""
        if not self._left:
            return b""
        data = self._src.read(min(n, self._left))
        if not data:
            raise TarFormatError(
                f"layer is truncated: entry {self._current!r} ends {self._left} bytes early")
        self._left -= len(data)
        return data

    def _skip_rest(self) -> None:
        while self.read():
            pass
        if self._pad:
            self._src.read_exact(self._pad)
            self._pad = 0

    def _next(self) -> Member | None:
        pax: dict[bytes, bytes] = {}
        long_name: bytes | None = None
        long_link: bytes | None = None
        while True:
            offset = self._src.offset
            block = self._src.read_exact(BLOCK)
            if not block:
                return None
            if len(block) < BLOCK:
                raise TarFormatError(f"layer is truncated inside a header at byte {offset}")
            if block == b"\0" * BLOCK:
                return None
            _check_checksum(block, offset)
            typeflag = block[156:157]
            size = _number(block[124:136], offset)
            if typeflag in (b"x", b"g", b"L", b"K"):
                data = self._metadata(size, offset)
                if typeflag == b"x":
                    pax.update(_parse_pax(data, offset))
                elif typeflag == b"L":
                    long_name = data.rstrip(b"\0")
                elif typeflag == b"K":
                    long_link = data.rstrip(b"\0")
                continue  # global headers ("g") carry nothing we apply
            return _member(block, offset, pax, long_name, long_link)

    def _metadata(self, size: int, offset: int) -> bytes:
        if size > MAX_METADATA:
            raise TarFormatError(
                f"tar metadata record at byte {offset} claims {size} bytes; refusing it")
        data = self._src.read_exact(size)
        if len(data) < size:
            raise TarFormatError(f"layer is truncated inside a header at byte {offset}")
        self._src.read_exact(-size % BLOCK)
        return data


def _member(block: bytes, offset: int, pax: dict[bytes, bytes], long_name: bytes | None,
            long_link: bytes | None) -> Member:
    name = _cstr(block[0:100])
    if block[257:263] == b"ustar\0" or block[257:263] == b"ustar ":
        prefix = _cstr(block[345:500]) if block[257:263] == b"ustar\0" else b""
        if prefix:
            name = prefix + b"/" + name
    name = pax.get(b"path", long_name if long_name is not None else name)
    linkname = pax.get(b"linkpath", long_link if long_link is not None else _cstr(block[157:257]))
    mtime_ns = _number(block[136:148], offset) * 1_000_000_000
    if b"mtime" in pax:
        mtime_ns = _pax_time_ns(pax[b"mtime"], offset)
    typeflag = block[156:157]
    if typeflag == b"S" or any(k.startswith(b"GNU.sparse.") for k in pax):
        raise TarFormatError(f"entry {_text(name)!r}: sparse files are not supported")
    xattrs = {
        _text(k[len(b"SCHILY.xattr."):]): v for k, v in pax.items()
        if k.startswith(b"SCHILY.xattr.")
    }
    return Member(
        name=_text(name),
        typeflag=typeflag,
        mode=_number(block[100:108], offset) & 0o7777,
        uid=_pax_int(pax, b"uid", _number(block[108:116], offset), offset),
        gid=_pax_int(pax, b"gid", _number(block[116:124], offset), offset),
        size=_pax_int(pax, b"size", _number(block[124:136], offset), offset),
        mtime_ns=mtime_ns,
        linkname=_text(linkname),
        devmajor=_number(block[329:337], offset),
        devminor=_number(block[337:345], offset),
        xattrs=xattrs,
    )


def _check_checksum(block: bytes, offset: int) -> None:
    try:
        stored = _number(block[148:156], offset)
    except TarFormatError:
        stored = -1
    rest = block[:148] + block[156:]
    unsigned = sum(rest) + 8 * 32
    if stored == unsigned:
        return
    signed = unsigned - 256 * sum(1 for b in rest if b > 127)  # some old writers did this
    if stored != signed:
        raise TarFormatError(f"not a tar stream (bad header checksum at byte {offset})")


def _number(field_: bytes, offset: int) -> int:
    if field_ and field_[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field_[1:], "big")
        return -value if field_[0] & 0x40 else value
    text = field_.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarFormatError(f"bad number {field_!r} in tar header at byte {offset}") from None


def _parse_pax(data: bytes, offset: int) -> dict[bytes, bytes]:
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError(f"bad PAX record in header at byte {offset}") from None
        end = pos + length
        if space < 0 or length <= 0 or end > len(data) or data[end - 1:end] != b"\n":
            raise TarFormatError(f"bad PAX record in header at byte {offset}")
        key, sep, value = data[space + 1:end - 1].partition(b"=")
        if not sep:
            raise TarFormatError(f"bad PAX record in header at byte {offset}")
        records[key] = value
        pos = end
    return records


def _pax_int(pax: dict[bytes, bytes], key: bytes, default: int, offset: int) -> int:
    if key not in pax:
        return default
    try:
        value = int(pax[key])
    except ValueError:
        raise TarFormatError(f"bad PAX {key.decode()} in header at byte {offset}") from None
    if value < 0:
        raise TarFormatError(f"negative PAX {key.decode()} in header at byte {offset}")
    return value


def _pax_time_ns(value: bytes, offset: int) -> int:
    whole, _, frac = value.partition(b".")
    try:
        seconds = int(whole)
        nanos = int((frac + b"000000000")[:9]) if frac else 0
    except ValueError:
        raise TarFormatError(f"bad PAX mtime in header at byte {offset}") from None
    return seconds * 1_000_000_000 + (-nanos if seconds < 0 or whole.startswith(b"-") else nanos)


def _cstr(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")
