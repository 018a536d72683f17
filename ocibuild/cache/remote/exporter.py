"""--cache-to: write the records of a build as a cache manifest to a registry or an
OCI layout directory.

Layers already at the destination are not sent again (HEAD, then skip); a layer
that came from a cache in the same registry is mounted from that repository, even
when this machine never downloaded it; only what is new is uploaded (fetched from its
cache first when this machine lacks it). The manifest goes last, so a reader never
sees a manifest whose blobs are missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.cache.records import CacheRecord
from ocibuild.cache.remote import format as cache_format
from ocibuild.cache.remote.lookup import RemoteRecords
from ocibuild.cache.remote.spec import CacheSpec
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layout import ImageLayout

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.registry.client import ClientPool
    from ocibuild.signing.keys import SigningKey


@dataclass
class CacheExportReport:
    """What one --cache-to wrote, sent, mounted or found already there."""

    destination: str
    manifest_digest: str = ""
    records: int = 0
    layers: int = 0
    uploaded: int = 0  # blobs sent (registry) or copied (local)
    mounted: int = 0
    skipped: int = 0  # already at the destination
    signed: bool = False  # with sign-key=: its signature was stored beside it


def export_cache(spec: CacheSpec, store: Store, records: Sequence[CacheRecord],
                 remote: RemoteRecords | None, clients: ClientPool | None,
                 key_version: str, sign_key: SigningKey | None = None) -> CacheExportReport:
    compression = spec.attrs.get("compression")
    if compression:
        records = [_with_compression(store, r, remote, compression) for r in records]
    config, layers = cache_format.encode(records, key_version)
    manifest = cache_format.manifest_for(config, layers)
    if spec.type == "registry":
        assert clients is not None
        report = _to_registry(spec, store, config, manifest.to_bytes(), layers, remote,
                              clients, sign_key)
    else:
        report = _to_layout(spec, store, config, manifest.to_bytes(), layers, remote)
    report.records, report.layers = len(records), len(layers)
    return report


def _with_compression(store: Store, record: CacheRecord, remote: RemoteRecords | None,
                      compression: str) -> CacheRecord:
    layer = record.layer
    if layer is None or layer.media_type == mediatypes.oci_layer_type(compression):
        return record
    if remote is not None:
        remote.ensure(store.layout, layer)
    from ocibuild.cache.remote.recompress import recompressed

    new = recompressed(store.layout, layer, compression)
    from dataclasses import replace

    return replace(record, layer=new)


def _to_registry(spec: CacheSpec, store: Store, config: bytes, manifest: bytes,
                 layers: Sequence[Descriptor], remote: RemoteRecords | None,
                 clients: ClientPool, sign_key: SigningKey | None) -> CacheExportReport:
    from ocibuild.oci import digest as _digest
    from ocibuild.registry import parse_reference, push_blobs, store_sources

    ref = parse_reference(spec.ref)
    what = f"--cache-to {ref}"
    client = clients.get(ref.registry)
    config_desc = Descriptor(cache_format.CACHE_CONFIG_TYPE, store.layout.put_bytes(config),
                             len(config))

    def fetch(blob: Descriptor) -> bool:
        # a layer of a --cache-from hit this machine never downloaded, which the
        # registry could not mount: only now are its bytes needed
        return remote is not None and remote.ensure(store.layout, blob)

    sent = push_blobs(client, ref.repository, store.layout, [*layers, config_desc],
                      what=what, sources=store_sources(store), fetch=fetch)
    tag = ref.tag or ref.digest or "latest"
    digest = client.put_manifest(ref.repository, tag, manifest, mediatypes.OCI_MANIFEST, what)
    if sign_key is not None:  # the digest of the bytes sent, whatever the registry says
        from ocibuild.signing.images import sign_manifest

        sign_manifest(client, ref, sign_key, what, digest=_digest.of_bytes(manifest))
    return CacheExportReport(str(ref), digest or _digest.of_bytes(manifest),
                             uploaded=sent.uploaded, mounted=sent.mounted,
                             skipped=sent.skipped, signed=sign_key is not None)


def _to_layout(spec: CacheSpec, store: Store, config: bytes, manifest: bytes,
               layers: Sequence[Descriptor], remote: RemoteRecords | None
               ) -> CacheExportReport:
    from ocibuild.oci import digest as _digest

    dest = ImageLayout.init(Path(spec.attrs["dest"]))
    report = CacheExportReport(str(dest.path))
    for blob in layers:
        if dest.has_blob(blob.digest):
            report.skipped += 1
            continue
        if store.layout.has_blob(blob.digest):
            with store.layout.open_blob(blob.digest, blob.size) as src:
                dest.put_stream(src, expected_digest=blob.digest,  # type: ignore[arg-type]
                                expected_size=blob.size)
        else:
            source = remote.source_of(blob.digest) if remote is not None else None
            if source is None:
                raise FileNotFoundError(blob.digest)
            source.fetch(blob, dest)
        report.uploaded += 1
    dest.put_bytes(config)
    digest = dest.put_bytes(manifest)
    desc = Descriptor(mediatypes.OCI_MANIFEST, digest, len(manifest))
    dest.tag(spec.tag, desc)
    report.manifest_digest = digest or _digest.of_bytes(manifest)
    return report
