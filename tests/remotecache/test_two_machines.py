"""A CI job on a fresh machine rebuilds an unchanged commit from a remote cache without
running a step, and downloads only the layers its output needs."""

from __future__ import annotations

import re
from pathlib import Path

from tests.remotecache.conftest import (
    Machine,
    cache_config,
    image_digest,
    layers_of_stage,
    registry_cache,
    write_files,
)
from tests.support.paths import OCIBUILD
from tests.support.registry_server import Proxy, RegistryServer

RUN = re.compile(r"\] RUN ")


def _blob_gets(proxy: Proxy) -> set[str]:
    return {s.path.rsplit("/", 1)[1] for s in proxy.requests("GET", r"/blobs/sha256:")}


def test_registry_cache_rebuilds_on_another_machine_without_running_a_step(
        machines: tuple[Machine, Machine], proxy: Proxy, registry: RegistryServer) -> None:
    a, b = machines
    ref = f"{proxy.host}/ci/app-cache:main"
    log_a, states_a = a.build("--cache-to", f"type=registry,ref={ref},mode=max")
    assert any(RUN.search(s) and v == "DONE" for s, v in states_a.items()), states_a
    assert "cache written to" in log_a
    manifest, config = registry_cache(registry, "ci/app-cache", "main")
    builder_layers = layers_of_stage(manifest, config, "builder")
    assert len(builder_layers) == 3  # COPY src, two RUNs

    proxy.reset()
    log_b, states_b = b.build("--cache-from", f"type=registry,ref={ref}", "-t", "app:1")
    assert states_b and set(states_b.values()) == {"CACHED"}, log_b
    assert image_digest(log_b) == image_digest(log_a)
    fetched = _blob_gets(proxy)
    assert not fetched & builder_layers, "B downloaded layers of a stage it did not need"
    final_layers = {d["digest"] for d in manifest["layers"]} - builder_layers
    assert fetched - {manifest["config"]["digest"]} == final_layers
    assert not any(b.has_blob(d) for d in builder_layers)

    # pushing B's image to the same registry mounts the cache's layers: no upload
    proxy.reset()
    push = b.builder.user.run([OCIBUILD, "--root", b.builder.root, "push",
                               "app:1", f"{proxy.host}/ci/app:1"])
    assert push.returncode == 0, push.stderr
    counts = re.search(r"(\d+) uploaded .* (\d+) mounted", push.stderr)
    assert counts is not None, push.stderr
    assert int(counts.group(2)) == len(final_layers)
    uploaded = {s.path for s in proxy.requests("PUT", r"/blobs/uploads/")}
    assert len(uploaded) == int(counts.group(1)) == 2  # the base layer and the config


def test_min_cache_lacks_the_builder_stage_and_max_cache_has_it(
        machines: tuple[Machine, Machine], proxy: Proxy, busybox_store_template: Path) -> None:
    a, b = machines
    ref = f"{proxy.host}/ci/modes"
    a.build("--cache-to", f"type=registry,ref={ref}:min,mode=min",
            "--cache-to", f"type=registry,ref={ref}:max,mode=max")
    write_files(b.context, {"app.conf": "setting=2\n"}, b.builder.user)  # final stage only

    _, with_max = b.build("--cache-from", f"{ref}:max")
    builder_runs = {s: v for s, v in with_max.items() if s.startswith("[builder") and RUN.search(s)}
    assert builder_runs and set(builder_runs.values()) == {"CACHED"}, with_max
    assert with_max["[stage-1 2/4] COPY app.conf /etc/app.conf"] == "DONE"

    # a second fresh machine with the min cache must run the builder stage again
    b.builder.root = b.builder.new_store(busybox_store_template, "store-min")
    _, with_min = b.build("--cache-from", f"{ref}:min")
    builder_runs = {s: v for s, v in with_min.items() if s.startswith("[builder") and RUN.search(s)}
    assert builder_runs and set(builder_runs.values()) == {"DONE"}, with_min


def test_local_cache_directory_carries_the_cache_between_machines(
        machines: tuple[Machine, Machine]) -> None:
    a, b = machines
    cache_dir = a.builder.tmp / "ci-cache"
    log_a, _ = a.build("--cache-to", f"type=local,dest={cache_dir},mode=max")
    manifest, config = cache_config(cache_dir)
    builder_layers = layers_of_stage(manifest, config, "builder")
    assert builder_layers

    log_b, states_b = b.build("--cache-from", f"type=local,src={cache_dir}")
    assert states_b and set(states_b.values()) == {"CACHED"}, log_b
    assert image_digest(log_b) == image_digest(log_a)
    assert not any(b.has_blob(d) for d in builder_layers)


def test_missing_or_unreachable_caches_are_warnings_when_asked(
        machines: tuple[Machine, Machine], proxy: Proxy) -> None:
    a, _ = machines
    log, states = a.build("--cache-from", f"type=registry,ref={proxy.host}/ci/none:x",
                          "--cache-from", f"type=local,src={a.builder.tmp / 'none'}",
                          "--cache-to", "type=registry,ref=127.0.0.1:9/ci/c,ignore-error=true")
    assert "DONE" in states.values()
    assert "no cache there yet (ignored)" in log
    assert "--cache-to type=registry,127.0.0.1:9/ci/c: not written" in log, log
