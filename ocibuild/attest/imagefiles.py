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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from ocibuild.errors import OcibuildError
from ocibuild.oci.compression import open_uncompressed
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.extract import OPAQUE_MARKER, WHITEOUT_PREFIX, archive_parts
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.tarreader import HashingSource, TarReader

MAX_ENTRIES = 1_000_000
MAX_KEPT = 256 << 20
_SYMLINK_HOPS = 40


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
        parts = [p for p in path.split("/") if p and p != "."]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
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
            parts = [p for p in target.split("/") if p and p != "."] + parts
        found = "/".join(done)
        return found if found in self.files else None

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
    image = ImageFiles()
    entries = 0
    for desc in layers:
        if desc.urls and not layout.has_blob(desc.digest):
            continue  # a foreign layer, never fetched: what it holds is not known here
        with layout.open_blob(desc.digest, desc.size) as blob:
            entries = _apply_layer(image, TarReader(HashingSource(open_uncompressed(blob))),
                                   desc.digest, keep, entries)
    return image


def _apply_layer(image: ImageFiles, reader: TarReader, layer: str,
                 keep: Keep, entries: int) -> int:
    hidden: list[str] = []  # whiteouts, applied to the layers below once this one is read
    written = ImageFiles()
    for member in reader:
        entries += 1
        if entries > MAX_ENTRIES:
            raise SbomError(f"the image has more than {MAX_ENTRIES} layer entries; "
                            "an SBOM reads no more")
        try:
            parts = archive_parts(member.name)
        except OcibuildError:
            continue
        if not parts:
            continue
        base, path = parts[-1], "/".join(parts)
        if base == OPAQUE_MARKER:
            hidden += image.children("/".join(parts[:-1]))
            continue
        if base.startswith(WHITEOUT_PREFIX):
            hidden.append("/".join([*parts[:-1], base[len(WHITEOUT_PREFIX):]]))
            continue
        written.remove(path)
        written.add(path)
        if member.is_regular:
            written.files[path] = _read_member(reader, member.size, path, layer, keep,
                                               written, image)
        elif member.typeflag == b"1":  # a hard link to an entry of this layer
            target = "/".join(archive_parts(member.linkname)) if member.linkname else ""
            if target in written.files:
                written.files[path] = written.files[target]
                if target in written.kept:
                    written.kept[path] = written.kept[target]
        elif member.typeflag == b"2":
            written.symlinks[path] = member.linkname
    for path in hidden:
        image.remove(path)
    for path in list(written.files) + list(written.symlinks):
        image.remove(path)
        image.add(path)
    image.files.update(written.files)
    image.symlinks.update(written.symlinks)
    image.kept.update(written.kept)
    return entries


def _read_member(reader: TarReader, size: int, path: str, layer: str,
                 keep: Keep, written: ImageFiles,
                 image: ImageFiles) -> FileInfo:
    cap = keep(path)
    if cap is not None and cap.strict and size > cap.limit:
        raise SbomError(f"/{path} in layer {layer} is {size} bytes, more than the "
                        f"{cap.limit} an SBOM reads of it")
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
        kept = sum(len(v) for v in image.kept.values()) + sum(
            len(v) for v in written.kept.values())
        if kept + min(size, cap.limit) > MAX_KEPT:
            raise SbomError(f"the image's package databases are larger than {MAX_KEPT} "
                            "bytes; an SBOM reads no more")
        written.kept[path] = b"".join(chunks)
    return FileInfo(size, sha1.hexdigest(), sha256.hexdigest(), layer)
