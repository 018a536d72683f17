"""Cache specs as people type them, and the cache config's encoding (no build needed)."""

from __future__ import annotations

import pytest

from ocibuild.cache.records import CacheRecord
from ocibuild.cache.remote import format as cache_format
from ocibuild.cache.remote.spec import parse_cache_spec
from ocibuild.errors import OcibuildError, UsageError
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.manifest import Manifest

LAYER = Descriptor(mediatypes.OCI_LAYER_GZIP, "sha256:" + "a" * 64, 10)


def test_specs_parse_like_buildx() -> None:
    spec = parse_cache_spec("type=registry,ref=r.example/c:t,mode=max,ignore-error=true",
                            export=True)
    assert (spec.type, spec.ref, spec.mode, spec.ignore_error) == (
        "registry", "r.example/c:t", "max", True)
    assert parse_cache_spec("r.example/c", export=False).ref == "r.example/c"
    assert parse_cache_spec("type=local,src=/x", export=False).attrs["src"] == "/x"
    for bad, export in [("type=s3,ref=x", True), ("type=registry", True),
                        ("type=local,src=/x", True), ("type=local,dest=/x", False),
                        ("type=registry,ref=x,mode=all", True),
                        ("type=registry,ref=x,compression=lz4", True)]:
        with pytest.raises(UsageError):
            parse_cache_spec(bad, export=export)


def test_config_round_trip_shares_layers_and_keeps_inputs() -> None:
    records = [
        CacheRecord("k1", LAYER, "sha256:" + "d" * 64, "t", "[a 2/3] RUN x",
                    {"explain": {"env": {"A": "1"}}}),
        CacheRecord("k2", None, None, "t", "[a 3/3] WORKDIR /x", {}),
        CacheRecord("k3", LAYER, "sha256:" + "d" * 64, "t", "[b 2/2] RUN x", {}),
    ]
    config, layers = cache_format.encode(records, "v-test")
    assert layers == [LAYER]
    manifest = cache_format.manifest_for(config, layers)
    assert manifest.config.media_type == cache_format.CACHE_CONFIG_TYPE
    back = cache_format.decode(config, manifest, "v-test", "test")
    assert back == records
    assert cache_format.decode(config, manifest, "another-key-scheme", "test") == []


def test_decode_refuses_what_is_not_a_valid_cache() -> None:
    config, layers = cache_format.encode(
        [CacheRecord("k", LAYER, "sha256:" + "d" * 64, "", "", {})], "v")
    no_layers = Manifest(cache_format.manifest_for(config, layers).config, ())
    with pytest.raises(OcibuildError, match="names layer 0"):
        cache_format.decode(config, no_layers, "v", "test")
    image = Manifest(Descriptor(mediatypes.OCI_CONFIG, LAYER.digest, 2), ())
    with pytest.raises(OcibuildError, match="not an ocibuild cache"):
        cache_format.decode(b"{}", image, "v", "test")
    with pytest.raises(OcibuildError, match="malformed"):
        cache_format.decode(b"{\"version\": 1, \"keyVersion\": \"v\"}",
                            cache_format.manifest_for(config, layers), "v", "test")
