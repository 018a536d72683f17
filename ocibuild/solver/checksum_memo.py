"""The content hashes of context files remembered between builds, kept compact.

A context of 300,000 files has 300,000 entries to remember: as a dict of a string and a
bytes object per file that is ~200 bytes each, 60 MB for the build to hold. Here each
directory's entries are one bytes object, `name NUL signature digest` after one another
(~80 bytes a file), and only the directory being read is unpacked into a dict: the
walk reads a directory's files together, so one unpacked directory at a time is enough.

The file is read and written one directory at a time (never a second copy of the
whole): a magic line, the time it was written (nanoseconds, little-endian u64), then
per directory its path's length and its entries' length (u32 each), the path and the
entries. A file that is not exactly that is ignored: every file is hashed again.
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
from pathlib import Path

MAGIC = b"ocibuild context checksum memo 3\n"
_WRITTEN = struct.Struct("<Q")
_HEADER = struct.Struct("<II")  # length of a directory's path, of its entries


class FileHashMemo:
    """path relative to the context -> a fixed-size value (stat signature and digest)."""

    def __init__(self, value_size: int) -> None:
        self.value_size = value_size
        self.written_ns = 0  # when the memo this one was loaded from was written
        self.changed = False
        self._dirs: dict[str, bytes] = {}  # directory -> its entries, packed
        self._open_dir: str | None = None  # the directory unpacked in `_open`
        self._open: dict[bytes, bytes] = {}
        self._open_changed = False

    def get(self, rel: str) -> bytes | None:
        directory, _, name = rel.rpartition("/")
        return self._unpacked(directory).get(os.fsencode(name))

    def put(self, rel: str, value: bytes) -> None:
        directory, _, name = rel.rpartition("/")
        self._unpacked(directory)[os.fsencode(name)] = value
        self._open_changed = self.changed = True

    def _unpacked(self, directory: str) -> dict[bytes, bytes]:
        if directory != self._open_dir:
            self._pack_open()
            self._open_dir, self._open = directory, self._unpack(self._dirs.get(directory, b""))
        return self._open

    def _pack_open(self) -> None:
        if self._open_changed and self._open_dir is not None:
            self._dirs[self._open_dir] = b"".join(
                name + b"\0" + value for name, value in self._open.items())
        self._open_changed = False

    def _unpack(self, packed: bytes) -> dict[bytes, bytes]:
        entries: dict[bytes, bytes] = {}
        size, at, end = self.value_size, 0, len(packed)
        while at < end:
            nul = packed.index(b"\0", at)
            entries[packed[at:nul]] = packed[nul + 1:nul + 1 + size]
            at = nul + 1 + size
        return entries

    def load(self, path: Path) -> None:
        """The entries of a memo file; none when it is missing or not a whole memo."""
        dirs: dict[str, bytes] = {}
        with contextlib.suppress(OSError, ValueError, struct.error, UnicodeDecodeError):
            with open(path, "rb") as f:
                if f.read(len(MAGIC)) != MAGIC:
                    return
                (written_ns,) = _WRITTEN.unpack(f.read(_WRITTEN.size))
                while header := f.read(_HEADER.size):
                    path_len, packed_len = _HEADER.unpack(header)
                    directory = os.fsdecode(f.read(path_len))
                    packed = f.read(packed_len)
                    if len(packed) != packed_len:
                        return
                    dirs[directory] = packed
            self.written_ns, self._dirs = written_ns, dirs

    def save(self, path: Path) -> None:
        """Write the memo atomically, stamped with the time now."""
        self._pack_open()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        with open(tmp, "wb") as f:
            f.write(MAGIC + _WRITTEN.pack(time.time_ns()))
            for directory, packed in self._dirs.items():
                name = os.fsencode(directory)
                f.write(_HEADER.pack(len(name), len(packed)))
                f.write(name)
                f.write(packed)
        os.replace(tmp, path)
        self.changed = False
