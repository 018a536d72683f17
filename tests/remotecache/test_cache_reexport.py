"""--cache-to of records this machine took from a --cache-from and never downloaded:
mounted when the cache is in the same registry, fetched and uploaded when it is not."""

from __future__ import annotations

from urllib.parse import parse_qs

from tests.remotecache.conftest import (
    Machine,
    cache_config,
    layers_of_stage,
    registry_cache,
)
from tests.support.registry_server import Proxy, RegistryServer


def _mounted(proxy: Proxy) -> set[str]:
    return {parse_qs(s.query)["mount"][0] for s in proxy.requests("POST", r"mount=")
            if s.status == 201}


def _blob_gets(proxy: Proxy) -> set[str]:
    return {s.path.rsplit("/", 1)[1] for s in proxy.requests("GET", r"/blobs/sha256:")}


def test_a_cache_in_the_same_registry_is_re_exported_by_mounts_without_downloads(
        machines: tuple[Machine, Machine], proxy: Proxy, registry: RegistryServer) -> None:
    a, b = machines
    a.build("--cache-to", f"type=registry,ref={proxy.host}/ci/reexport-src:main,mode=max")
    manifest, config = registry_cache(registry, "ci/reexport-src", "main")
    builder_layers = layers_of_stage(manifest, config, "builder")

    proxy.reset()
    log, states = b.build("--cache-from", f"type=registry,ref={proxy.host}/ci/reexport-src:main",
                          "--cache-to", f"type=registry,ref={proxy.host}/ci/reexport-dst:main,"
                          "mode=max")
    assert states and set(states.values()) == {"CACHED"}, log
    assert builder_layers <= _mounted(proxy)
    assert not _blob_gets(proxy) & builder_layers
    assert not any(b.has_blob(d) for d in builder_layers)
    copied, _ = registry_cache(registry, "ci/reexport-dst", "main")
    assert builder_layers <= {d["digest"] for d in copied["layers"]}


def test_a_local_cache_is_re_exported_to_a_registry_by_fetching_what_is_missing(
        machines: tuple[Machine, Machine], proxy: Proxy, registry: RegistryServer) -> None:
    a, b = machines
    cache_dir = a.builder.tmp / "ci-cache"
    a.build("--cache-to", f"type=local,dest={cache_dir},mode=max")
    manifest, config = cache_config(cache_dir)
    builder_layers = layers_of_stage(manifest, config, "builder")
    assert builder_layers

    proxy.reset()
    log, states = b.build("--cache-from", f"type=local,src={cache_dir}",
                          "--cache-to", f"type=registry,ref={proxy.host}/ci/from-local:main,"
                          "mode=max")
    assert states and set(states.values()) == {"CACHED"}, log
    assert all(b.has_blob(d) for d in builder_layers)  # fetched from the cache directory
    uploaded = {parse_qs(s.query)["digest"][0] for s in proxy.requests("PUT", r"/blobs/uploads/")
                if s.status == 201}
    assert builder_layers <= uploaded
    copied, _ = registry_cache(registry, "ci/from-local", "main")
    assert builder_layers <= {d["digest"] for d in copied["layers"]}
