"""A pull through the faults a flaky registry has: bursts of 5xx, a reset, a truncated
body and a slow one are recovered from; a wrong digest is refused and nothing is kept."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ocibuild.errors import DigestMismatchError
from ocibuild.oci.layout import ImageLayout
from ocibuild.registry import ClientPool, RegistryOptions, parse_reference, pull
from tests.support.fault_registry import Blob, FaultRegistry, Rule

LAYER = Blob.of_bytes(os.urandom(1 << 20))
CONFIG = Blob.of_bytes(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
    "type": "layers", "diff_ids": [LAYER.digest]}}).encode())
BLOB = f"GET /v2/flaky/app/blobs/{LAYER.digest}"
TIMEOUT = 2.0


def _pull(registry: FaultRegistry, dest: Path) -> ImageLayout:
    layout = ImageLayout.init(dest)
    clients = ClientPool(RegistryOptions(timeout=TIMEOUT, backoff=0.05))
    try:
        pull(parse_reference(f"{registry.host}/flaky/app:1"), layout, clients=clients)
    finally:
        clients.close()
    return layout


@pytest.mark.parametrize("rule", [
    Rule(r"GET /v2/flaky/app/manifests/", "status", 503, b"busy", times=2),
    Rule(BLOB, "reset", times=1),
    Rule(BLOB, "truncate", after=100_000, times=1),
    # 1 MiB at 384 KiB/s: longer than the timeout, but never without progress
    Rule(BLOB, "slow", rate=384 << 10),
], ids=["503-burst", "reset", "truncated", "slow"])
def test_a_pull_recovers(rule: Rule, tmp_path: Path) -> None:
    with FaultRegistry() as registry:
        registry.add_image("flaky/app", "1", CONFIG, [LAYER])
        registry.add_rule(rule)
        started = time.monotonic()
        layout = _pull(registry, tmp_path / "pulled")
        elapsed = time.monotonic() - started
    assert rule.fired >= 1
    assert layout.has_blob(LAYER.digest) and layout.blob_size(LAYER.digest) == LAYER.size
    if rule.action == "slow":
        assert elapsed > TIMEOUT


def test_a_blob_with_a_wrong_digest_is_refused(tmp_path: Path) -> None:
    with FaultRegistry() as registry:
        registry.add_image("flaky/app", "1", CONFIG, [LAYER])
        registry.add_rule(Rule(BLOB, "corrupt"))
        with pytest.raises(DigestMismatchError) as caught:
            _pull(registry, tmp_path / "pulled")
    assert LAYER.digest in caught.value.message
    layout = ImageLayout.open(tmp_path / "pulled")
    assert not layout.has_blob(LAYER.digest)
    assert not [n for n in os.listdir(layout.path) if n.startswith(".tmp-")]
