"""The cache manifest: an OCI image manifest whose config blob lists cache records.

    manifest.config.mediaType = CACHE_CONFIG_TYPE
    manifest.layers            = every layer a record names, once each
    config = {"version": 1, "keyVersion": "...", "records": [
        {"key": HEX, "layer": INDEX|null, "diffID": "sha256:...", "created": RFC3339,
         "description": "[stage 2/3] RUN ...", "inputs": {...}}, ...]}

See docs/cache-format.md for the reasons and the comparison with BuildKit's format.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ocibuild.cache.records import CacheRecord
from ocibuild.errors import OcibuildError
from ocibuild.oci import canonical, mediatypes
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.manifest import Manifest

CACHE_CONFIG_TYPE = "application/vnd.ocibuild.cache.config.v1+json"
FORMAT_VERSION = 1
MAX_CONFIG = 64 << 20  # a cache config larger than this is refused on import


def encode(records: Sequence[CacheRecord], key_version: str) -> tuple[bytes, list[Descriptor]]:
    """The config blob and the manifest's layer list for `records`."""
    layers: list[Descriptor] = []
    index: dict[str, int] = {}
    items: list[dict[str, Any]] = []
    for rec in records:
        pos = None
        if rec.layer is not None:
            if rec.layer.digest not in index:
                index[rec.layer.digest] = len(layers)
                layers.append(Descriptor(rec.layer.media_type, rec.layer.digest,
                                         rec.layer.size))
            pos = index[rec.layer.digest]
        items.append({"key": rec.key, "layer": pos, "diffID": rec.diff_id,
                      "created": rec.created, "description": rec.description,
                      "inputs": rec.inputs})
    config = {"version": FORMAT_VERSION, "keyVersion": key_version, "records": items}
    return canonical.dumps(config), layers


def manifest_for(config: bytes, layers: Sequence[Descriptor]) -> Manifest:
    from ocibuild.oci import digest as _digest

    return Manifest(config=Descriptor(CACHE_CONFIG_TYPE, _digest.of_bytes(config), len(config)),
                    layers=tuple(layers), media_type=mediatypes.OCI_MANIFEST)


def decode(config: bytes, manifest: Manifest, key_version: str, what: str
           ) -> list[CacheRecord]:
    """The records of a cache manifest; records made by another key version are left
    out (their keys can never match)."""
    if manifest.config.media_type != CACHE_CONFIG_TYPE:
        raise OcibuildError(f"{what}: not an ocibuild cache (config media type "
                            f"{manifest.config.media_type!r})")
    try:
        doc = json.loads(config)
        if doc.get("version") != FORMAT_VERSION:
            raise OcibuildError(f"{what}: cache format version {doc.get('version')!r} is "
                                f"not {FORMAT_VERSION}")
        if doc.get("keyVersion") != key_version:
            return []
        records = []
        for item in doc["records"]:
            pos = item.get("layer")
            layer = None
            if pos is not None:
                if not isinstance(pos, int) or not 0 <= pos < len(manifest.layers):
                    raise OcibuildError(f"{what}: record {item.get('key')} names layer "
                                        f"{pos!r}, the manifest has {len(manifest.layers)}")
                layer = manifest.layers[pos]
                if not item.get("diffID"):
                    raise OcibuildError(f"{what}: record {item.get('key')} has no diffID")
            records.append(CacheRecord(
                key=str(item["key"]), layer=layer, diff_id=item.get("diffID") if layer else None,
                created=str(item.get("created", "")), description=str(item.get("description", "")),
                inputs=dict(item.get("inputs") or {})))
        return records
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise OcibuildError(f"{what}: the cache config is malformed: {exc}") from None
