"""Helpers for layer tests: build trees, describe trees, build hand-made tar streams."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path


def describe(root: Path) -> dict[str, tuple]:
    """Every entry below root as path -> (kind, mode, owner, payload): what a user of the
    tree would notice (contents of files, targets of links, device numbers)."""
    found: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            st = full.lstat()
            mode = stat.S_IMODE(st.st_mode)
            owner = (st.st_uid, st.st_gid)
            if stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", mode, owner, None)
            elif stat.S_ISLNK(st.st_mode):
                found[rel] = ("symlink", None, owner, os.readlink(full))
            elif stat.S_ISREG(st.st_mode):
                found[rel] = ("file", mode, owner, full.read_bytes())
            elif stat.S_ISFIFO(st.st_mode):
                found[rel] = ("fifo", mode, owner, None)
            else:
                found[rel] = ("device", mode, owner, st.st_rdev)
    return found


def write_files(root: Path, files: dict[str, bytes | str]) -> None:
    """Create files (bytes) and symlinks (str targets) below root, with their parents."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.symlink_to(content)
        else:
            path.write_bytes(content)


class TarBuilder:
    """A tar stream written entry by entry with the standard library, which (unlike our
    reader) happily writes hostile names, so tests can aim them at the extractor."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self._tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def file(self, name: str, data: bytes = b"data", mode: int = 0o644) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        self._tar.addfile(info, io.BytesIO(data))
        return self

    def dir(self, name: str, mode: int = 0o755) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = mode
        self._tar.addfile(info)
        return self

    def symlink(self, name: str, target: str) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        self._tar.addfile(info)
        return self

    def hardlink(self, name: str, target: str) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type = tarfile.LNKTYPE
        info.linkname = target
        self._tar.addfile(info)
        return self

    def bytes(self) -> bytes:
        self._tar.close()
        return self.buf.getvalue()


def header_only(name: str, claimed_size: int) -> bytes:
    """One regular-file header claiming `claimed_size` bytes, followed by no data."""
    info = tarfile.TarInfo(name)
    info.size = claimed_size
    return info.tobuf(format=tarfile.PAX_FORMAT)
