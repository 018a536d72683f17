"""The files of an image's final filesystem, read by streaming its layers once (bottom
first), as an SBOM needs them: every regular file's size, SHA-1 and SHA-256 and the
layer it comes from, every symlink's target, and the bytes of the few files a caller
asks to keep (package databases), each under its own size cap.

Whiteouts are honoured the way the layers are stacked: `.wh.NAME` removes NAME (with
everything under it) and `.wh..wh..opq` everything under its directory, from the layers
below only. The image is not trusted: a file to keep that is larger than its cap, more
entries than `MAX_ENTRIES`, or more kept bytes than `MAX_KEPT` stop the read with an
`SbomError` naming the limit, and names that would climb out of the root are ignored.
Nothing is written to disk; memory stays bounded by those caps.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from ocibuild.errors import OcibuildError
from ocibuild.oci.compression import open_uncompressed
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.extract import OPAQUE_MARKER, WHITEOUT_PREFIX, archive_parts
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.tarreader import HashingSource, Member, TarReader

MAX_ENTRIES = 1_000_000
MAX_KEPT = 256 << 20
_SYMLINK_HOPS = 40
_RESOLVE_STEPS = 4096  # path components walked for one name, links followed


class SbomError(OcibuildError):
    """The image's files or package databases are beyond what an SBOM reads."""


class Cap(NamedTuple):
    """How much of a kept file is read: a larger one is an error when `strict` (a
    database that large is hostile), else only its first `limit` bytes are kept (a
    long copyright file)."""

    limit: int
    strict: bool = True


Keep = Callable[[str], Cap | None]


@dataclass(frozen=True)
class FileInfo:
    """A file of the image as the SBOM lists it: its size and digests, and the layer it comes
    from."""
    size: int
    sha1: str
    sha256: str
    layer: str  # the digest of the layer blob the file comes from


@dataclass
class ImageFiles:
    """The final filesystem: paths are relative to the root, without a leading `/`."""

    files: dict[str, FileInfo] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    kept: dict[str, bytes] = field(default_factory=dict)
    _children: dict[str, set[str]] = field(default_factory=dict, repr=False)

    def resolve(self, path: str) -> str | None:
        """The path of the regular file `path` names, following symlinks in any of its
        components (`/lib -> usr/lib` on a merged-/usr system); None when none is."""
        parts = deque(p for p in path.split("/") if p and p != ".")
        done: list[str] = []
        hops = steps = 0
        while parts:
            part = parts.popleft()
            steps += 1
            if steps > _RESOLVE_STEPS:
                return None
            if part == "..":
                if done:
                    done.pop()
                continue
            current = "/".join([*done, part])
            target = self.symlinks.get(current)
            if target is None:
                done.append(part)
                continue
            hops += 1
            if hops > _SYMLINK_HOPS:
                return None
            if target.startswith("/"):
                done = []
            parts.extendleft(reversed([p for p in target.split("/") if p and p != "."]))
        found = "/".join(done)
        return found if found in self.files else None

    def drop(self, path: str) -> None:
        """Forget a file or symlink at `path` (a directory takes its place)."""
        self.files.pop(path, None)
        self.symlinks.pop(path, None)
        self.kept.pop(path, None)

    def remove(self, path: str) -> None:
        """Remove `path` and everything under it."""
        stack = [path]
        while stack:
            p = stack.pop()
            self.files.pop(p, None)
            self.symlinks.pop(p, None)
            self.kept.pop(p, None)
            stack.extend(self._children.pop(p, ()))

    def add(self, path: str) -> None:
        """Register `path` under its parent directories (for `remove`)."""
        while path:
            parent = path.rpartition("/")[0]
            siblings = self._children.setdefault(parent, set())
            if path in siblings:
                return
            siblings.add(path)
            path = parent

    def children(self, directory: str) -> list[str]:
        return list(self._children.get(directory, ()))


def read_image_files(layout: ImageLayout, layers: Sequence[Descriptor],
                     keep: Keep) -> ImageFiles:
    """The final filesystem of `layers` (blobs in `layout`). `keep(path)` is the `Cap` of
    a file whose bytes the caller wants, None for the others."""
    reading = _Reading(keep)
    for desc in layers:
        if desc.urls and not layout.has_blob(desc.digest):
            continue  # a foreign layer, never fetched: what it holds is not known here
        with layout.open_blob(desc.digest, desc.size) as blob:
            reading.layer(TarReader(HashingSource(open_uncompressed(blob))), desc.digest)
    return reading.image


class _Reading:
    """One read of an image's layers, bottom first, with the counts its limits need."""

    def __init__(self, keep: Keep) -> None:
        self.image = ImageFiles()
        self.keep = keep
        self.entries = 0
        self.kept_bytes = 0  # all ever kept, whatever later layers removed

    def layer(self, reader: TarReader, digest: str) -> None:
        hidden: list[str] = []  # whiteouts: applied to the layers below once it is read
        written = ImageFiles()
        directories: list[str] = []
        for member in reader:
            self.entries += 1
            if self.entries > MAX_ENTRIES:
                raise SbomError(f"the image has more than {MAX_ENTRIES} layer entries; "
                                "an SBOM reads no more")
            try:
                parts = archive_parts(member.name)
            except OcibuildError:
                continue  # climbs out of the root: extraction refuses it too
            if not parts:
                continue
            base, path = parts[-1], "/".join(parts)
            if base == OPAQUE_MARKER:
                hidden += self.image.children("/".join(parts[:-1]))
            elif base.startswith(WHITEOUT_PREFIX):
                hidden.append("/".join([*parts[:-1], base[len(WHITEOUT_PREFIX):]]))
            elif member.typeflag == b"5":  # what is under a directory stays
                written.drop(path)
                written.add(path)
                directories.append(path)
            else:
                written.remove(path)
                written.add(path)
                self._entry(reader, member, path, digest, written)
        for path in hidden:
            self.image.remove(path)
        for path in directories:
            self.image.drop(path)
        for path in [*written.files, *written.symlinks]:
            self.image.remove(path)
            self.image.add(path)
        self.image.files.update(written.files)
        self.image.symlinks.update(written.symlinks)
        self.image.kept.update(written.kept)

    def _entry(self, reader: TarReader, member: Member, path: str, digest: str,
               written: ImageFiles) -> None:
        if member.is_regular:
            written.files[path] = self._read(reader, member.size, path, digest, written)
        elif member.typeflag == b"1":  # a hard link to an entry of this layer
            target = "/".join(archive_parts(member.linkname)) if member.linkname else ""
            if target in written.files:
                written.files[path] = written.files[target]
                if target in written.kept:
                    written.kept[path] = written.kept[target]
        elif member.typeflag == b"2":
            written.symlinks[path] = member.linkname

    def _read(self, reader: TarReader, size: int, path: str, layer: str,
              written: ImageFiles) -> FileInfo:
        cap = self.keep(path)
        if cap is not None and cap.strict and size > cap.limit:
            raise SbomError(f"/{path} in layer {layer} is {size} bytes, more than the "
                            f"{cap.limit} an SBOM reads of it")
        if cap is not None:
            self.kept_bytes += min(size, cap.limit)
            if self.kept_bytes > MAX_KEPT:
                raise SbomError(f"the image's package databases are larger than {MAX_KEPT} "
                                "bytes; an SBOM reads no more")
        sha1, sha256 = hashlib.sha1(usedforsecurity=False), hashlib.sha256()
        chunks: list[bytes] = []
        wanted = cap.limit if cap is not None else 0
        while data := reader.read():
            sha1.update(data)
            sha256.update(data)
            if wanted > 0:
                chunks.append(data[:wanted])
                wanted -= len(chunks[-1])
        if cap is not None:
            written.kept[path] = b"".join(chunks)
        return FileInfo(size, sha1.hexdigest(), sha256.hexdigest(), layer)
