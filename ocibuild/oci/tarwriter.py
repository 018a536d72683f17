"""A minimal, deterministic POSIX (PAX) tar header writer.

Headers are ustar; a PAX extended header is added only when a value does not fit
(long or non-ASCII names, large ids, sizes or times) or when the entry has xattrs
(`SCHILY.xattr.NAME`). uname/gname are always empty; no atime/ctime.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)

REGULAR = b"0"
HARDLINK = b"1"
SYMLINK = b"2"
CHARDEV = b"3"
BLOCKDEV = b"4"
DIRECTORY = b"5"
FIFO = b"6"
PAX_HEADER = b"x"

_PAX_NAME = b"././@PaxHeader"
_MAX_OCTAL_7 = 0o7777777
_MAX_OCTAL_11 = 0o77777777777


@dataclass
class TarEntry:
    """A tar archive's entry to write: its header fields (the data follows it)."""
    name: bytes  # archive path; directories end with "/"
    typeflag: bytes
    mode: int = 0o644  # permission bits, with setuid/setgid/sticky
    uid: int = 0
    gid: int = 0
    size: int = 0  # data bytes that follow (regular files only)
    mtime: int = 0
    linkname: bytes = b""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def encode_header(entry: TarEntry) -> bytes:
    """The header block(s) of one entry: an optional PAX header, then the ustar header."""
    pax: list[tuple[bytes, bytes]] = []
    name = _fit_text(entry.name, 100, b"path", pax)
    linkname = _fit_text(entry.linkname, 100, b"linkpath", pax)
    uid = _fit_number(entry.uid, _MAX_OCTAL_7, b"uid", pax)
    gid = _fit_number(entry.gid, _MAX_OCTAL_7, b"gid", pax)
    size = _fit_number(entry.size, _MAX_OCTAL_11, b"size", pax)
    mtime = _fit_number(entry.mtime, _MAX_OCTAL_11, b"mtime", pax)
    for key in sorted(entry.xattrs):
        pax.append((b"SCHILY.xattr." + key.encode("utf-8", "surrogateescape"), entry.xattrs[key]))
    header = _ustar(name, entry.mode, uid, gid, size, mtime, entry.typeflag, linkname,
                    entry.devmajor, entry.devminor)
    if not pax:
        return header
    # PAX records are sorted by key so that the bytes never depend on insertion order.
    records = b"".join(_pax_record(k, v) for k, v in sorted(pax))
    pax_header = _ustar(_PAX_NAME, 0o644, 0, 0, len(records), 0, PAX_HEADER, b"", 0, 0)
    return pax_header + records + padding(len(records)) + header


def _fit_text(value: bytes, limit: int, key: bytes, pax: list[tuple[bytes, bytes]]) -> bytes:
    if len(value) <= limit and value.isascii():
        return value
    pax.append((key, value))
    return value[:limit]


def _fit_number(value: int, limit: int, key: bytes, pax: list[tuple[bytes, bytes]]) -> int:
    if 0 <= value <= limit:
        return value
    pax.append((key, str(value).encode()))
    return 0 if value < 0 else limit


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


# name, mode, uid, gid, size, mtime, checksum, typeflag, linkname, magic and version,
# uname, gname, devmajor, devminor, prefix, padding: 512 bytes, short fields NUL-padded
_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12s")
_CHECKSUM_AT = 148


def _ustar(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, typeflag: bytes,
           linkname: bytes, devmajor: int, devminor: int) -> bytes:
    device = typeflag in (CHARDEV, BLOCKDEV)
    header = _USTAR.pack(
        name, b"%07o\0" % (mode & 0o7777), b"%07o\0" % uid, b"%07o\0" % gid,
        b"%011o\0" % size, b"%011o\0" % mtime,
        b"        ",  # the checksum counts its own field as spaces
        typeflag, linkname, b"ustar\x0000", b"", b"",
        b"%07o\0" % devmajor if device else b"", b"%07o\0" % devminor if device else b"",
        b"", b"")
    return b"%s%06o\0 %s" % (header[:_CHECKSUM_AT], sum(header), header[_CHECKSUM_AT + 8:])
