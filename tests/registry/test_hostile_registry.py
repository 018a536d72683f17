"""A registry that is broken or hostile: an oversized config, a token realm on another
host over plain http, no answer at all, dropped SYNs, control characters in an error.
Each fails with one clear message, in bounded memory and time, without a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.registry.conftest import Cli
from tests.support.fault_registry import (
    Blob,
    FaultRegistry,
    Rule,
    bearer_challenge,
    token_answer,
)
from tests.support.paths import OCIBUILD
from tests.support.rss import run_measured


def _huge_config(mib: int = 96) -> Blob:
    """A valid image config padded to `mib` MiB, produced in chunks: never held whole."""
    head = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},'
    pad = b"A" * (1 << 20)

    def chunks():  # noqa: ANN202
        yield head + b'"padding":"'
        for _ in range(mib):
            yield pad
        yield b'"}'

    return Blob.of_chunks(chunks)


def test_an_oversized_config_is_refused_in_bounded_memory(cli: Cli, tmp_path: Path) -> None:
    with FaultRegistry() as registry:
        config = _huge_config()
        registry.add_image("hostile/bigconfig", "1", config)
        ref = f"{registry.host}/hostile/bigconfig:1"
        run = run_measured([str(OCIBUILD), "pull", ref, "--output", f"oci:{tmp_path}/x"],
                           cli.env())
    print(f"pull peak RSS {run.peak_rss_mb:.0f} MB, {run.seconds:.1f} s")
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert ref in run.stderr and config.digest in run.stderr, run.stderr
    assert "16 MiB" in run.stderr, run.stderr  # the cap
    assert run.peak_rss_mb < 80, f"peak RSS {run.peak_rss_mb:.0f} MB"


def test_an_oversized_cache_config_is_not_used(tmp_path: Path) -> None:
    """--cache-from: a warning naming the cap, and the build goes on without the cache."""
    from ocibuild.cache.remote.importer import load_caches
    from ocibuild.cache.remote.spec import parse_cache_spec
    from ocibuild.cache.store import Store
    from ocibuild.registry import ClientPool

    with FaultRegistry() as registry:
        config = _huge_config(65)
        registry.add_image("cache/app", "buildcache", config)
        spec = parse_cache_spec(f"type=registry,ref={registry.host}/cache/app:buildcache",
                                export=False)
        warnings: list[str] = []
        clients = ClientPool()
        try:
            load_caches([spec], Store.open(tmp_path / "root"), clients, "v1", warnings)
        finally:
            clients.close()
        assert not registry.requests(f"GET .*/blobs/{config.digest}")
    assert len(warnings) == 1 and config.digest in warnings[0], warnings
    assert "cache config" in warnings[0] and "64 MiB" in warnings[0], warnings


def _non_loopback_address() -> str | None:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout.split()
    for i, word in enumerate(out[:-1]):
        if word == "inet":
            return out[i + 1].split("/")[0]
    return None


@pytest.fixture
def other_host() -> str:
    """An address of this machine that is not loopback: a stand-in for another host."""
    address = _non_loopback_address() if shutil.which("ip") else None
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to stand for another host")
    return address


def test_credentials_go_to_a_plain_http_realm_only_on_an_insecure_registry(
        cli: Cli, tmp_path: Path, other_host: str) -> None:
    with FaultRegistry(other_host) as tokens, FaultRegistry() as registry:
        tokens.add_rule(token_answer())
        realm = f"http://{tokens.host}/token"
        registry.add_rule(bearer_challenge(realm))
        cli.login_file(registry.host)
        ref = f"{registry.host}/private/app:1"

        proc = cli("pull", ref, "--output", f"oci:{tmp_path}/x")
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert realm in proc.stderr and ref in proc.stderr, proc.stderr
        assert not [r for r in tokens.received
                    if "authorization" in {k.lower() for k in r.headers}]

        # named by --insecure-registry, the token server is trusted with them
        cli("pull", ref, "--output", f"oci:{tmp_path}/y", "--insecure-registry", other_host)
        sent = [r.headers.get("Authorization", "") for r in tokens.received]
        assert sent and all(h.startswith("Basic ") for h in sent), sent


TIMEOUT = 2


def test_a_registry_that_never_answers_fails_at_the_timeout(cli: Cli, tmp_path: Path) -> None:
    with FaultRegistry() as registry:
        registry.add_rule(Rule(r"^GET /v2/", "hang"))
        ref = f"{registry.host}/silent/app:1"
        started = time.monotonic()
        proc = cli("pull", ref, "--output", f"oci:{tmp_path}/x",
                   "--registry-timeout", str(TIMEOUT), timeout=60)
        elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert TIMEOUT <= elapsed < TIMEOUT + 5, f"{elapsed:.1f} s"
    assert "Traceback" not in proc.stderr
    assert f"pull {ref}" in proc.stderr, proc.stderr  # the operation
    assert f"{TIMEOUT} s" in proc.stderr and "GET /v2/" in proc.stderr, proc.stderr


def test_a_blob_download_that_stalls_fails_at_the_timeout(cli: Cli, tmp_path: Path) -> None:
    """Not once per resume attempt: a stalled registry is not asked again."""
    layer = Blob.of_bytes(os.urandom(256 << 10))
    config = Blob.of_bytes(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [layer.digest]}}).encode())
    with FaultRegistry() as registry:
        registry.add_image("slow/app", "1", config, [layer])
        registry.add_rule(Rule(f"GET /v2/slow/app/blobs/{layer.digest}", "stall",
                               after=64 << 10))
        ref = f"{registry.host}/slow/app:1"
        started = time.monotonic()
        proc = cli("pull", ref, "--output", f"oci:{tmp_path}/x",
                   "--registry-timeout", str(TIMEOUT), timeout=60)
        elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert TIMEOUT <= elapsed < TIMEOUT + 5, f"{elapsed:.1f} s"
    assert f"pull {ref}" in proc.stderr and f"{TIMEOUT} s" in proc.stderr, proc.stderr
    assert f"GET /v2/slow/app/blobs/{layer.digest}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                    reason="needs root and iproute2 for a throwaway network namespace")
def test_dropped_syns_fail_at_the_timeout_with_a_readable_message(
        cli: Cli, tmp_path: Path) -> None:
    from tests.support.netns import network_namespace

    address = "198.51.100.7"
    ref = f"{address}:5000/nowhere/app:1"
    with network_namespace() as netns:
        # a neighbour that never answers: the SYNs leave and vanish (without the entry a
        # veth interface would report "no route to host" once ARP gives up)
        subprocess.run(["ip", "-n", netns.name, "neigh", "replace", address, "lladdr",
                        "02:00:00:00:00:07", "dev", "ocib0", "nud", "permanent"],
                       capture_output=True)
        argv = netns.exec_argv([OCIBUILD, "pull", ref, "--output", f"oci:{tmp_path}/x"])
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              env={**cli.env(), "OCIBUILD_REGISTRY_TIMEOUT": str(TIMEOUT)})
        elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert elapsed < TIMEOUT + 5, f"{elapsed:.1f} s"
    assert "object at 0x" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert ref in proc.stderr and f"{TIMEOUT} s" in proc.stderr, proc.stderr


HOSTILE = "\x1b]0;pwned\x07 \x1b[31mred\x1b[0m \x9b2J"


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_control_characters_from_a_registry_are_escaped(cli: Cli, tmp_path: Path,
                                                         content_type: str) -> None:
    body = json.dumps({"errors": [{"code": "DENIED", "message": HOSTILE}]}) \
        if content_type == "application/json" else HOSTILE
    with FaultRegistry() as registry:
        registry.add_rule(Rule(r"/manifests/", "status", 400, body.encode(),
                               {"Content-Type": content_type}))
        ref = f"{registry.host}/hostile/escape:1"
        proc = cli("pull", ref, "--output", f"oci:{tmp_path}/x")
    assert proc.returncode == 1, proc.stderr
    assert ref in proc.stderr and "400" in proc.stderr, proc.stderr
    for raw in ("\x1b", "\x07", "\x9b"):
        assert raw not in proc.stderr, repr(proc.stderr)
    assert r"\x1b]0;pwned\x07 \x1b[31mred\x1b[0m \x9b2J" in proc.stderr, proc.stderr
