"""Records imported from remote caches, and where their layer bytes are.

A remote hit is still a descriptor: the record names its layer by digest and diffID,
and the solver uses it exactly like a local record. What differs is that the blob may
not be in the local store yet; `RemoteRecords.ensure` fetches it (verified) from the
cache it came from, only when a step that must run, or an output, needs the bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ocibuild.cache.records import CacheRecord
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layout import ImageLayout

if TYPE_CHECKING:
    from ocibuild.registry.client import RegistryClient


class BlobSource(Protocol):
    """Somewhere a cache's blobs can be read from."""

    description: str  # for messages: "registry 127.0.0.1:5000/cache", "local DIR"

    def fetch(self, desc: Descriptor, layout: ImageLayout) -> None:
        """Put the blob into `layout`, verified against its digest and size."""
        ...


@dataclass(frozen=True, eq=False)
class RegistryBlobSource:
    """Layers of a remote hit that are in a registry repository."""

    client: RegistryClient
    repository: str

    @property
    def registry(self) -> str:
        return self.client.registry

    @property
    def description(self) -> str:
        return f"{self.client.registry}/{self.repository}"

    def fetch(self, desc: Descriptor, layout: ImageLayout) -> None:
        from ocibuild.registry.pull import fetch_blob

        fetch_blob(self.client, self.repository, desc, layout,
                   f"cache {self.description}")


@dataclass(frozen=True, eq=False)
class LayoutBlobSource:
    """Layers of a remote hit that are in a local OCI layout."""

    layout: ImageLayout

    @property
    def description(self) -> str:
        return str(self.layout.path)

    def fetch(self, desc: Descriptor, layout: ImageLayout) -> None:
        with self.layout.open_blob(desc.digest, desc.size) as src:
            layout.put_stream(src, expected_digest=desc.digest,  # type: ignore[arg-type]
                              expected_size=desc.size)


@dataclass(frozen=True)
class RemoteHit:
    """A record found in a --cache-from cache, and where its layer is."""

    record: CacheRecord
    source: BlobSource  # where the record's layer is when the store lacks it


@dataclass
class RemoteRecords:
    """Every record of every --cache-from, first cache first; thread-safe fetches."""

    _hits: dict[str, RemoteHit] = field(default_factory=dict)
    _sources: dict[str, BlobSource] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    fetched: list[str] = field(default_factory=list)  # digests downloaded by this build

    def add(self, records: Iterable[CacheRecord], source: BlobSource) -> None:
        for record in records:
            self._hits.setdefault(record.key, RemoteHit(record, source))
            if record.layer is not None:
                self._sources.setdefault(record.layer.digest, source)

    def get(self, key: str) -> RemoteHit | None:
        return self._hits.get(key)

    def records(self) -> list[CacheRecord]:
        return [hit.record for hit in self._hits.values()]

    def source_of(self, digest: str) -> BlobSource | None:
        return self._sources.get(digest)

    def __len__(self) -> int:
        return len(self._hits)

    def ensure(self, layout: ImageLayout, desc: Descriptor) -> bool:
        """Make the blob present in `layout` (fetching it once, whatever the number of
        threads asking); True if it is there afterwards."""
        if layout.has_blob(desc.digest):
            return True
        source = self._sources.get(desc.digest)
        if source is None:
            return False
        with self._guard:
            lock = self._locks.setdefault(desc.digest, threading.Lock())
        with lock:
            if not layout.has_blob(desc.digest):
                source.fetch(desc, layout)
                with self._guard:
                    self.fetched.append(desc.digest)
        return True
