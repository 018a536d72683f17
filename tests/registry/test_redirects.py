"""Redirects, as registries send blob downloads to a storage host: the download follows
them, and credentials never leave the registry they were given for."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ocibuild.oci.layout import ImageLayout
from tests.registry.conftest import Cli
from tests.support.fault_registry import Blob, FaultRegistry, Rule

LAYER = Blob.of_bytes(os.urandom(200_000))
CONFIG = Blob.of_bytes(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
    "type": "layers", "diff_ids": [LAYER.digest]}}).encode())
BASIC = Rule(r"^GET /v2/$", "status", 401, b"{}", {"WWW-Authenticate": 'Basic realm="test"'},
             times=1)


def _redirect(status: int, to: str) -> Rule:
    return Rule(f"GET /v2/app/blobs/{LAYER.digest}", "status", status, b"",
                {"Location": f"{to}/v2/app/blobs/{LAYER.digest}"})


def test_a_blob_redirected_to_another_host_comes_from_there_without_credentials(
        cli: Cli, tmp_path: Path) -> None:
    with FaultRegistry() as storage, FaultRegistry() as registry:
        storage.add_blob(LAYER)
        registry.add_image("app", "1", CONFIG, [LAYER])
        registry.add_rule(BASIC)
        registry.add_rule(_redirect(307, storage.url))
        cli.login_file(registry.host)
        cli.ok("pull", f"{registry.host}/app:1", "--output", f"oci:{tmp_path}/x")
    assert ImageLayout.open(tmp_path / "x").has_blob(LAYER.digest)
    manifest = registry.requests("GET .*/manifests/1")
    assert manifest and manifest[0].headers.get("Authorization", "").startswith("Basic ")
    fetched = storage.requests(f"GET .*/blobs/{LAYER.digest}")
    assert len(fetched) == 1
    assert "authorization" not in {k.lower() for k in fetched[0].headers}


def test_a_redirect_loop_fails_with_a_message_not_a_hang(cli: Cli, tmp_path: Path) -> None:
    with FaultRegistry() as registry:
        registry.add_image("app", "1", CONFIG, [LAYER])
        registry.add_rule(_redirect(302, registry.url))
        ref = f"{registry.host}/app:1"
        proc = cli("pull", ref, "--output", f"oci:{tmp_path}/x", timeout=60)
        followed = len(registry.requests(f"GET .*/blobs/{LAYER.digest}"))
    assert proc.returncode == 1, proc.stderr
    assert ref in proc.stderr and "too many redirects" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert followed % 6 == 0  # each attempt: the request and five redirects
