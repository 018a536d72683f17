"""--cache-from: read cache manifests (registry or OCI layout) into RemoteRecords.

Only the manifest and the config blob are read here; layers stay where they are
until a step or an output needs their bytes. A cache that does not exist yet (the
first build of a branch) is a warning, not an error, as in BuildKit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.cache.remote import format as cache_format
from ocibuild.cache.remote.lookup import LayoutBlobSource, RegistryBlobSource, RemoteRecords
from ocibuild.cache.remote.spec import CacheSpec
from ocibuild.errors import OcibuildError
from ocibuild.oci import limits
from ocibuild.oci.layout import ImageLayout, LayoutError
from ocibuild.oci.manifest import Manifest

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.reference import Reference
    from ocibuild.registry.client import ClientPool, RegistryClient
    from ocibuild.signing.keys import PublicKey


def load_caches(specs: Sequence[CacheSpec], store: Store, clients: ClientPool | None,
                key_version: str, warnings: list[str],
                verify_keys: Sequence[PublicKey | None] = ()) -> RemoteRecords:
    """The records of every cache in `specs`; a registry cache with a verify key (in
    `verify_keys`, by position) is used only if a signature made with it vouches for
    its manifest."""
    remote = RemoteRecords()
    keys = list(verify_keys) or [None] * len(specs)
    for spec, key in zip(specs, keys, strict=True):
        try:
            if spec.type == "registry":
                assert clients is not None
                _load_registry(spec, store, clients, key_version, remote, warnings, key)
            else:
                _load_layout(spec, key_version, remote, warnings)
        except OcibuildError as exc:  # a cache is an optimization: build without it
            warnings.append(f"--cache-from {spec}: not used: {exc.message}")
    return remote


def _load_registry(spec: CacheSpec, store: Store, clients: ClientPool, key_version: str,
                   remote: RemoteRecords, warnings: list[str],
                   key: PublicKey | None = None) -> None:
    from ocibuild.reference import parse_reference
    from ocibuild.registry.errors import NotFoundError
    from ocibuild.registry.export import store_sources
    from ocibuild.registry.pull import fetch_blob, resolve_manifest

    ref = parse_reference(spec.ref)
    what = f"--cache-from {ref}"
    client = clients.get(ref.registry)
    try:
        desc, manifest, _ = resolve_manifest(client, ref, None, what)
    except NotFoundError:
        warnings.append(f"{what}: no cache there yet (ignored)")
        return
    if key is not None:  # before anything the manifest names is read
        _verify(client, ref, key, desc.digest, what)
    config = manifest.config
    limits.refuse_oversized(limits.CACHE_CONFIG, config.size, what, config.digest)
    fetch_blob(client, ref.repository, config, store.layout, what)
    data = limits.read_blob(store.layout, config.digest, limits.CACHE_CONFIG, what, config.size)
    records = cache_format.decode(data, manifest, key_version, what)
    remote.add(records, RegistryBlobSource(client, ref.repository))
    sources = store_sources(store)
    if sources is not None:  # a later push to this registry mounts these layers
        sources.add(ref.registry, ref.repository, [d.digest for d in manifest.layers])


def _verify(client: RegistryClient, ref: Reference, key: PublicKey, digest: str,
            what: str) -> None:
    """The manifest's digest covers the config (the records) and every layer, whose
    bytes are checked against their digests when fetched: one signature covers all."""
    from ocibuild.signing.images import verify_manifest
    from ocibuild.signing.verify import SignatureError

    try:
        verify_manifest(client, ref, key, what, digest=digest)
    except SignatureError as exc:
        raise OcibuildError(f"refused by verify-key={key.path}: {exc.message}") from None


def _load_layout(spec: CacheSpec, key_version: str, remote: RemoteRecords,
                 warnings: list[str]) -> None:
    path = Path(spec.attrs["src"])
    what = f"--cache-from type=local,src={path}"
    if not (path / "index.json").is_file():
        warnings.append(f"{what}: no cache there yet (ignored)")
        return
    try:
        layout = ImageLayout.open(path)
        desc = layout.resolve(spec.attrs.get("digest") or spec.tag)
    except LayoutError as exc:
        raise OcibuildError(f"{what}: {exc.message}") from None
    data = limits.read_blob(layout, desc.digest, limits.MANIFEST, what, desc.size)
    manifest = Manifest.from_bytes(data, desc.media_type)
    data = limits.read_blob(layout, manifest.config.digest, limits.CACHE_CONFIG, what,
                            manifest.config.size)
    records = cache_format.decode(data, manifest, key_version, what)
    remote.add(records, LayoutBlobSource(layout))
