"""Image outputs with push=true push the image their keys describe: Docker media types
(oci-mediatypes=false) and zstd layers, read back from the registry with skopeo."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from ocibuild.cache import Store
from ocibuild.exporter import export, parse_output
from ocibuild.oci import mediatypes
from ocibuild.registry import RegistryOptions, push_names
from tests.registry.conftest import skopeo_src_flags
from tests.support.registry_server import RegistryServer
from tests.support.store_images import layer_from_dir, result_from_layers, write_tree


def _skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", *args], check=True, capture_output=True, text=True,
                          timeout=120).stdout


def test_pushed_images_keep_their_media_types_and_compression(
        http_registry: RegistryServer, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    tree = write_tree(tmp_path / "tree", {"etc/motd": "pushed\n", "bin/tool": "#!/bin/sh\n"})
    os.chmod(tree / "bin/tool", 0o755)
    result = result_from_layers([layer_from_dir(store, tree)], Cmd=["/bin/tool"])
    docker_ref = f"{http_registry.host}/keys/docker:1"
    zstd_ref = f"{http_registry.host}/keys/zstd:1"
    report = export(result, [
        parse_output(f"type=image,name={docker_ref},push=true,oci-mediatypes=false"),
        parse_output(f"type=registry,name={zstd_ref},compression=zstd,"
                     "annotation.org.opencontainers.image.title=zstd"),
    ], store)
    for image, names in report.pushes:
        push_names(store.layout, image, names, options=RegistryOptions())
    flags = [f.replace("--src-", "--") for f in skopeo_src_flags(http_registry, tmp_path)]

    raw = json.loads(_skopeo("inspect", "--raw", *flags, f"docker://{docker_ref}"))
    assert raw["mediaType"] == mediatypes.DOCKER_MANIFEST
    assert raw["config"]["mediaType"] == mediatypes.DOCKER_CONFIG
    assert {x["mediaType"] for x in raw["layers"]} == {mediatypes.DOCKER_LAYER_GZIP}
    _skopeo("copy", "--quiet", *skopeo_src_flags(http_registry, tmp_path),
            f"docker://{docker_ref}", f"docker-archive:{tmp_path / 'docker.tar'}:keys:1")

    raw = json.loads(_skopeo("inspect", "--raw", *flags, f"docker://{zstd_ref}"))
    assert raw["mediaType"] == mediatypes.OCI_MANIFEST
    assert raw["annotations"] == {"org.opencontainers.image.title": "zstd"}
    assert [x["mediaType"] for x in raw["layers"]] == [mediatypes.OCI_LAYER_ZSTD]
    out = tmp_path / "zstd-copy"
    _skopeo("copy", "--quiet", "--preserve-digests", *skopeo_src_flags(http_registry, tmp_path),
            f"docker://{zstd_ref}", f"dir:{out}")
    layer = out / raw["layers"][0]["digest"].removeprefix("sha256:")
    plain = subprocess.run(["zstd", "-d", "-c", str(layer)], check=True,
                           capture_output=True).stdout
    assert f"sha256:{hashlib.sha256(plain).hexdigest()}" == result.config.diff_ids[0]
