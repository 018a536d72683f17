"""OCI image layouts on disk: `oci-layout`, `index.json` and `blobs/sha256/`.

Every write is atomic (temporary file, fsync, rename) and idempotent; every read of a
blob through this module is checked against its digest. `index.json` updates are
serialised with a lock on the layout directory, so concurrent writers are safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from ocibuild.atomic import atomic_write_bytes, fsync_dir, new_file, writer_prefix
from ocibuild.errors import OcibuildError
from ocibuild.oci import canonical, limits, mediatypes
from ocibuild.oci import digest as _digest
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.manifest import Index, Manifest

REF_NAME = "org.opencontainers.image.ref.name"
# A new blob's written bytes are handed to the disk every this many (the kernel writes
# them back while the rest is made), so commit's fsync waits for the tail only: a 240
# MB layer's fsync took 0.02-0.25 s at the end here, 0.01-0.10 s this way.
WRITEBACK_EVERY = 8 << 20
OCI_LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"


class LayoutError(OcibuildError):
    pass


class BlobWriter:
    """Streams bytes into a new blob; `commit()` verifies and renames it into place.

    Used as a context manager: leaving the block without commit() (an error, an
    interrupt) removes the temporary file, so no half-written blob is ever visible.
    """

    def __init__(self, layout: ImageLayout, expected_digest: str | None = None,
                 expected_size: int | None = None) -> None:
        self._layout = layout
        self._expected = expected_digest
        self._expected_size = expected_size
        fd, tmp = new_file(layout.path, writer_prefix())
        with contextlib.suppress(OSError):  # held while writing: not a dead writer's
            fcntl.flock(fd, fcntl.LOCK_EX)  # (ocibuild.cache.temporaries)
        self.tmp_path = Path(tmp)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._hasher = _digest.HashingWriter(self._file, expected_size)
        self.digest: str | None = None
        self.size = 0
        self._handed = 0  # bytes handed to the disk's writeback

    def write(self, data: bytes) -> int:
        written = self._hasher.write(data)
        if self._hasher.size - self._handed >= WRITEBACK_EVERY:
            self._hand_to_disk()
        return written

    def _hand_to_disk(self) -> None:
        """Start writing back what is written so far (and let the page cache drop it:
        a blob is read again, if at all, by a push or an export much later)."""
        self._file.flush()
        end = self._hasher.size
        with contextlib.suppress(OSError):
            os.posix_fadvise(self._file.fileno(), self._handed, end - self._handed,
                             os.POSIX_FADV_DONTNEED)
        self._handed = end

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self._file.flush()

    def hashed_so_far(self) -> tuple[str, int]:
        """(digest, size) of what was written until now: a layer writer uses it instead
        of hashing the same compressed bytes a second time."""
        return self._hasher.hashed_so_far()

    def commit(self) -> Descriptor:
        """Finish the blob; returns a descriptor with an empty media type (set your own).

        A blob the layout already holds is kept and the new copy dropped unsynced (a
        step run again with --no-cache writes the same layer): the one there was synced
        when it was committed, and its name is its digest."""
        self._file.flush()
        digest, size = self._hasher.digest, self._hasher.size
        final = self._layout.blob_path(digest)
        wanted = (self._expected in (None, digest)
                  and self._expected_size in (None, size))
        if wanted and _holds(final, size):
            self.abort()
            fsync_dir(final.parent)  # its writer may not have got that far yet
            self.digest, self.size = digest, size
            return Descriptor("application/octet-stream", digest, size)
        os.fsync(self._file.fileno())
        self._file.close()
        if self._expected is not None and digest != self._expected:
            self.abort()
            raise _digest.DigestMismatchError(
                f"blob {self._expected}: content has digest {digest}"
            )
        if self._expected_size is not None and size != self._expected_size:
            self.abort()
            raise _digest.DigestMismatchError(
                f"blob {digest}: {size} bytes, expected {self._expected_size}"
            )
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.tmp_path, 0o644)
        os.replace(self.tmp_path, final)
        fsync_dir(final.parent)
        self.digest, self.size = digest, size
        return Descriptor("application/octet-stream", digest, size)

    def abort(self) -> None:
        # closing flushes what the buffer holds, which fails on a full disk; the file is
        # closed all the same and must go
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp_path)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.digest is None:
            self.abort()


def _holds(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


class BlobMaker(Protocol):
    """Makes blobs a layout lacks from something else that holds their bytes (the
    store's layers kept as directories until an output needs their blobs)."""

    def can_make(self, digest: str) -> bool: ...

    def make(self, digest: str) -> None: ...


class ImageLayout:
    """An OCI image layout directory. With a `maker`, a blob it can make counts as
    held, and reading it makes it first."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.maker: BlobMaker | None = None

    # -- creation -------------------------------------------------------------------
    @classmethod
    def init(cls, path: str | os.PathLike[str]) -> ImageLayout:
        """Open the layout at `path`, creating an empty one if there is none."""
        p = Path(path)
        if p.exists() and not p.is_dir():
            raise LayoutError(f"{p}: exists and is not a directory")
        p.mkdir(parents=True, exist_ok=True)
        layout = cls(p)
        (p / "blobs" / _digest.ALGORITHM).mkdir(parents=True, exist_ok=True)
        marker = p / OCI_LAYOUT_FILE
        if not marker.exists():
            atomic_write_bytes(
                marker, canonical.dumps({"imageLayoutVersion": mediatypes.OCI_LAYOUT_VERSION})
            )
        if not (p / INDEX_FILE).exists():
            layout.write_index(Index(manifests=()))
        return layout

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ImageLayout:
        """Open an existing layout; a clear error if `path` is not one."""
        p = Path(path)
        marker = p / OCI_LAYOUT_FILE
        if not marker.is_file():
            raise LayoutError(f"{p}: not an OCI image layout (no {OCI_LAYOUT_FILE} file)")
        info = canonical.loads(marker.read_bytes(), f"{marker}")
        version = info.get("imageLayoutVersion") if isinstance(info, dict) else None
        if not isinstance(version, str) or not version.startswith("1."):
            raise LayoutError(f"{marker}: unsupported imageLayoutVersion {version!r}")
        return cls(p)

    # -- blobs ----------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.path / "blobs" / _digest.ALGORITHM / _digest.hex_of(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file() or (
            self.maker is not None and self.maker.can_make(digest))

    def ensure_blob(self, digest: str) -> None:
        """Make the blob now if the layout lacks it and its maker can (before reading
        its file through blob_path)."""
        if self.maker is not None and not self.blob_path(digest).is_file() \
                and self.maker.can_make(digest):
            self.maker.make(digest)

    def blob_size(self, digest: str) -> int:
        self.ensure_blob(digest)
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise LayoutError(f"{self.path}: blob {digest} is missing") from None

    def open_blob(self, digest: str, size: int | None = None) -> _digest.VerifyingReader:
        """A reader of the blob that checks its digest (and size) when read to the end."""
        self.ensure_blob(digest)
        try:
            f = open(self.blob_path(digest), "rb")  # noqa: SIM115 (closed by the caller)
        except FileNotFoundError:
            raise LayoutError(f"{self.path}: blob {digest} is missing") from None
        return _ClosingVerifyingReader(f, digest, size, what=f"{self.path}: blob {digest}")

    def read_blob(self, digest: str) -> bytes:
        """The whole blob, verified: for small blobs (manifests, configs) only."""
        with self.open_blob(digest) as r:
            data = r.read()
            r.read()
        return data

    def put_bytes(self, data: bytes) -> str:
        """Store `data` as a blob (no-op when present); returns its digest."""
        digest = _digest.of_bytes(data)
        if not self.has_blob(digest):
            with self.blob_writer(digest, len(data)) as w:
                w.write(data)
                w.commit()
        return digest

    def blob_writer(self, expected_digest: str | None = None,
                    expected_size: int | None = None) -> BlobWriter:
        return BlobWriter(self, expected_digest, expected_size)

    def put_stream(self, src: BinaryIO, expected_digest: str | None = None,
                   expected_size: int | None = None) -> Descriptor:
        if expected_digest is not None and self.has_blob(expected_digest):
            return Descriptor("application/octet-stream", expected_digest,
                              self.blob_size(expected_digest))
        with self.blob_writer(expected_digest, expected_size) as w:
            while chunk := src.read(_digest.CHUNK):
                w.write(chunk)
            return w.commit()

    def blobs(self) -> Iterator[str]:
        d = self.path / "blobs" / _digest.ALGORITHM
        if d.is_dir():
            for entry in sorted(os.listdir(d)):
                candidate = f"{_digest.ALGORITHM}:{entry}"
                if _digest.is_digest(candidate):
                    yield candidate

    # -- index and tags -------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise index.json read-modify-write cycles between processes."""
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def index(self) -> Index:
        path = self.path / INDEX_FILE
        try:
            with open(path, "rb") as f:
                data = limits.read_capped(f, limits.LAYOUT_INDEX, str(self.path))
        except FileNotFoundError:
            raise LayoutError(f"{self.path}: no {INDEX_FILE}") from None
        return Index.from_bytes(data)

    def write_index(self, index: Index) -> None:
        """Write index.json, unless it already holds exactly these bytes: a cached rebuild
        names the image its tags already name, and rewriting costs two fsyncs."""
        data = index.to_bytes()
        path = self.path / INDEX_FILE
        try:
            with open(path, "rb") as f:
                if f.read(len(data) + 1) == data:
                    return
        except OSError:
            pass  # absent or unreadable: write it
        atomic_write_bytes(path, data)

    def tags(self) -> dict[str, Descriptor]:
        return {
            d.annotations[REF_NAME]: d for d in self.index().manifests if REF_NAME in d.annotations
        }

    def tag(self, name: str, desc: Descriptor) -> None:
        """Point tag `name` at `desc` (replacing what it named before)."""
        if not name:
            raise LayoutError("empty tag")
        tagged = desc.with_annotations(**{REF_NAME: name})
        with self.locked():
            idx = self.index()
            kept = [m for m in idx.manifests if m.annotations.get(REF_NAME) != name]
            self.write_index(Index((*kept, tagged), idx.media_type, idx.annotations))

    def untag(self, name: str) -> bool:
        with self.locked():
            idx = self.index()
            kept = [m for m in idx.manifests if m.annotations.get(REF_NAME) != name]
            if len(kept) == len(idx.manifests):
                return False
            self.write_index(Index(tuple(kept), idx.media_type, idx.annotations))
            return True

    def resolve(self, ref: str | None = None) -> Descriptor:
        """The descriptor a tag or digest names; with no ref, the only entry."""
        entries = self.index().manifests
        if ref is None or ref == "":
            if len(entries) == 1:
                return entries[0]
            names = sorted(d.annotations.get(REF_NAME, d.digest) for d in entries)
            raise LayoutError(
                f"{self.path}: {len(entries)} images in the layout; name one of: "
                + (", ".join(names) or "(none)")
            )
        if _digest.is_digest(ref):
            for d in entries:
                if d.digest == ref:
                    return d
            if self.has_blob(ref):
                data = limits.read_blob(self, ref, limits.MANIFEST, str(self.path))
                mt = json.loads(data).get("mediaType", mediatypes.OCI_MANIFEST)
                return Descriptor(mt, ref, len(data))
            raise LayoutError(f"{self.path}: no image with digest {ref}")
        for d in entries:
            if d.annotations.get(REF_NAME) == ref:
                return d
        known = sorted(self.tags())
        raise LayoutError(
            f"{self.path}: no image tagged {ref!r}"
            + (f" (tags: {', '.join(known)})" if known else " (the layout has no tags)")
        )

    def put_manifest(self, manifest: Manifest | Index) -> Descriptor:
        data = manifest.to_bytes()
        self.put_bytes(data)
        return Descriptor(manifest.media_type, _digest.of_bytes(data), len(data))


class _ClosingVerifyingReader(_digest.VerifyingReader):
    def __init__(self, f: BinaryIO, digest: str, size: int | None, what: str) -> None:
        super().__init__(f, digest, size, what)
        self._f = f

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> _ClosingVerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
