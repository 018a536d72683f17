"""The local store: content (an OCI layout), cache records, snapshots and cache mounts.

    ROOT/content/        OCI image layout: every blob; index.json names local images
    ROOT/records.db      SQLite: cache key -> layer, snapshot and cache-mount bookkeeping
    ROOT/snapshots/      one extracted directory per layer diffID (ocibuild.snapshot)
    ROOT/cache-mounts/   RUN --mount=type=cache directories
    ROOT/tmp/            temporary files of the processes using the store, one
                         locked directory each (ocibuild.cache.temporaries)
    ROOT/store.lock      builds hold it shared, prune exclusive

The root is 0700: cache mounts and layers can hold secrets.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

from ocibuild import store_paths
from ocibuild.cache import names, temporaries
from ocibuild.cache.mounts import open_cache_mount
from ocibuild.cache.records import CacheRecord, RecordDB
from ocibuild.errors import OcibuildError, StoreError
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.image import Image, load_image
from ocibuild.oci.layout import REF_NAME, ImageLayout
from ocibuild.oci.platform import Platform

ENV_ROOT = store_paths.ENV_ROOT


class StoreBusyError(StoreError):
    """The store is in use by a build (prune refuses to run then)."""


class DamagedDatabaseError(StoreError):
    """records.db is not a database SQLite can open."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: the cache database is damaged ({reason}); "
                         "`ocibuild cache check --repair` rebuilds it")
        self.path, self.reason = path, reason


@contextlib.contextmanager
def exclusive_lock(root: Path, *, wait: bool = False) -> Iterator[None]:
    """Exclusive use of the store at `root`: fails at once if a build holds it."""
    fd = os.open(root / store_paths.LOCK, os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise StoreBusyError(
                f"{root}: a build is using the store; try again when it has finished"
            ) from None
        yield
    finally:
        os.close(fd)


def default_root() -> Path:
    """$OCIBUILD_ROOT, else $XDG_DATA_HOME/ocibuild, else ~/.local/share/ocibuild."""
    return Path(store_paths.default_root())


def _make_private(root: Path) -> None:
    """Only the owner may enter its store (cache mounts and layers can hold secrets): a
    root made by hand, or by an older version, loses its group and other bits. Someone
    else (root reading a user's store) changes nothing."""
    st = root.stat()
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(root, stat.S_IMODE(st.st_mode) & 0o700)


def _no_room(root: Path, exc: BaseException) -> bool:
    """Whether opening the store at `root` failed for want of space."""
    from ocibuild.errors import is_disk_full

    if is_disk_full(exc):
        return True
    try:
        return os.statvfs(root).f_bavail == 0
    except OSError:
        return False


class Store:
    """The local image store and build cache under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.layout = ImageLayout.init(root / store_paths.CONTENT)
        self.layout.maker = self  # layer blobs a build left to make (cache.lazy_blobs)
        self.snapshots_dir = root / store_paths.SNAPSHOTS
        self.mounts_dir = root / store_paths.CACHE_MOUNTS
        self.snapshots_dir.mkdir(exist_ok=True)
        self.mounts_dir.mkdir(exist_ok=True)
        self._lock_path = root / store_paths.LOCK
        self._lock_path.touch(exist_ok=True)
        self.db = RecordDB(root / store_paths.RECORDS_DB)

    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None) -> Store:
        """Open the store at `root` (default_root() when None), creating it on first use."""
        path = Path(root) if root is not None else default_root()
        if path.exists() and not path.is_dir():
            raise StoreError(f"{path}: the store root is not a directory")
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            _make_private(path)
            return cls(path)
        except (OSError, sqlite3.DatabaseError) as exc:
            if _no_room(path, exc):  # SQLite says "disk I/O error" when it cannot grow
                from ocibuild.cache.disk_full import disk_full_error

                raise disk_full_error(OcibuildError(f"{path}: cannot open the store"),
                                      path) from exc
            if isinstance(exc, OSError):
                raise StoreError(f"{path}: cannot open the store: {exc.strerror}") from None
            raise DamagedDatabaseError(path / store_paths.RECORDS_DB, str(exc)) from None

    # -- layer blobs not written yet (ImageLayout's BlobMaker) ----------------------------
    def can_make(self, digest: str) -> bool:
        if not os.path.exists(store_paths.lazy_blob_path(str(self.root), digest)):
            return False
        from ocibuild.cache import lazy_blobs

        return lazy_blobs.can_make(self.root, digest)

    def make(self, digest: str) -> None:
        from ocibuild.cache import lazy_blobs

        lazy_blobs.make(self.root, self.layout, digest)

    # -- cache records -----------------------------------------------------------------
    def get_record(self, key: str) -> CacheRecord | None:
        """The record for `key`, or None; a record whose layer blob is gone is not trusted."""
        record = self.db.get_record(key)
        if record is not None and record.layer is not None \
                and not self.layout.has_blob(record.layer.digest):
            return None
        return record

    def put_record(self, record: CacheRecord) -> None:
        """Store `record` atomically; its layer blob must already be in the content store."""
        if record.layer is not None and not self.layout.has_blob(record.layer.digest):
            raise OcibuildError(
                f"cache record {record.key}: layer blob {record.layer.digest} is not in the store"
            )
        self.db.put_record(record)

    # -- local image names -------------------------------------------------------------
    def tag(self, name: str, desc: Descriptor) -> str:
        """Name the image `desc` (already in the content store); returns the full name."""
        if not self.layout.has_blob(desc.digest):
            raise OcibuildError(f"cannot tag {name}: {desc.digest} is not in the store")
        full = names.normalize_name(name)
        self.layout.tag(full, desc)
        return full

    def untag(self, name: str) -> bool:
        return self.layout.untag(names.normalize_name(name))

    def images(self) -> dict[str, Descriptor]:
        """Full image name -> manifest (or index) descriptor."""
        return {d.annotations[REF_NAME]: d for d in self.layout.index().manifests
                if REF_NAME in d.annotations}

    def resolve_image(self, name: str, platform: Platform | None = None) -> Image | None:
        """The local image a name (or a digest / image ID prefix) refers to, or None."""
        desc = self._lookup(name)
        if desc is None:
            return None
        return load_image(self.layout, desc.digest, platform)

    def lookup(self, name: str) -> Descriptor | None:
        """What a name (or a digest / image ID prefix) refers to: a manifest or an index."""
        return self._lookup(name)

    def _lookup(self, name: str) -> Descriptor | None:
        images = self.images()
        text = name.strip()
        if text.startswith("sha256:") and len(text) == 71:
            for d in images.values():
                if d.digest == text:
                    return d  # else it may be a whole image ID (a config digest)
        with contextlib.suppress(OcibuildError):
            full = names.normalize_name(text)
            if full in images:
                return images[full]
        # an image ID (config digest) or a prefix of one, as `docker images` shows
        hexpart = text.removeprefix("sha256:")
        if len(hexpart) >= 12 and all(c in "0123456789abcdef" for c in hexpart):
            for d in images.values():
                with contextlib.suppress(OcibuildError):
                    image = load_image(self.layout, d.digest)
                    if image.manifest.config.digest.removeprefix("sha256:").startswith(hexpart):
                        return d
        return None

    # -- cache mounts --------------------------------------------------------------------
    def cache_mount(self, id: str, sharing: str = "shared", *, mode: int = 0o755,
                    uid: int = 0, gid: int = 0) -> contextlib.AbstractContextManager[Path]:
        """The directory of cache mount `id` for the duration of a step.

        sharing: "shared" (same directory, concurrent users), "private" (a fresh
        directory when the shared one is in use), "locked" (wait for exclusive use).
        mode/uid/gid (ids inside the step) apply when the directory is created.
        """
        return open_cache_mount(self, id, sharing, mode=mode, uid=uid, gid=gid)

    # -- locking -----------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held (shared) by every build for its whole run; prune waits for none of them."""
        fd = os.open(self._lock_path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            temporaries.enter(self.root)  # this build's temporary files go in the store
            yield
        finally:
            os.close(fd)

    def exclusive(self, *, wait: bool = False) -> contextlib.AbstractContextManager[None]:
        """Exclusive use of the store (prune): fails at once if a build holds it."""
        return exclusive_lock(self.root, wait=wait)

    def close(self) -> None:
        self.db.close()
