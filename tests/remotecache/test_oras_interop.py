"""An ORAS client (the `oras` Python package) reads our cache manifest and its blobs:
the manifest validates against ORAS's OCI manifest schema, every blob matches its
digest, and the config is our documented format."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import oras.provider
import oras.schemas

from tests.remotecache.conftest import Machine
from tests.support.registry_server import RegistryServer

CACHE_CONFIG_TYPE = "application/vnd.ocibuild.cache.config.v1+json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def test_oras_pulls_the_cache_manifest_and_its_blobs(
        machines: tuple[Machine, Machine], registry: RegistryServer, tmp_path: Path) -> None:
    a, _ = machines
    target = f"{registry.host}/interop/cache:v1"
    a.build("--cache-to", f"type=registry,ref={target},mode=max")

    client = oras.provider.Registry(hostname=registry.host, insecure=True)
    manifest = client.get_manifest(target, validation_schema=oras.schemas.manifest)
    assert manifest["config"]["mediaType"] == CACHE_CONFIG_TYPE
    assert len(manifest["layers"]) == 6  # 3 builder steps, 3 final-stage steps

    for desc in [manifest["config"], *manifest["layers"]]:
        out = tmp_path / desc["digest"].replace(":", "-")
        client.download_blob(target, desc["digest"], str(out))
        assert _sha256(out) == desc["digest"]
        assert out.stat().st_size == desc["size"]

    config = json.loads((tmp_path / manifest["config"]["digest"].replace(":", "-"))
                        .read_text())
    assert config["version"] == 1
    described = {r["description"].split("]")[0] + "]" for r in config["records"]}
    assert "[builder 3/4]" in described and "[stage-1 4/4]" in described
    used = {r["layer"] for r in config["records"] if r["layer"] is not None}
    assert used == set(range(len(manifest["layers"])))
