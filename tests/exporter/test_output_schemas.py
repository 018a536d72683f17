"""Every manifest, index, config and oci-layout the exporters write validates against
the OCI image-spec schemas."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from ocibuild.cache import Store
from ocibuild.exporter import BuildResult, export, parse_output
from tests.support.schemas import validate


def _validate_layout_dir(layout: Path) -> int:
    validate("layout", json.loads((layout / "oci-layout").read_text()))
    index = json.loads((layout / "index.json").read_text())
    validate("index", index)
    checked = 0
    for entry in index["manifests"]:
        manifest = json.loads((layout / "blobs/sha256" / entry["digest"][7:]).read_text())
        validate("manifest", manifest)
        config = json.loads(
            (layout / "blobs/sha256" / manifest["config"]["digest"][7:]).read_text())
        validate("config", config)
        for layer in manifest["layers"]:
            validate("descriptor", layer)
        checked += 1
    return checked


def test_oci_directory_and_tar_outputs_validate(store: Store, two_layer_result: BuildResult,
                                                tmp_path: Path) -> None:
    export(two_layer_result, [parse_output(f"type=oci,dest={tmp_path / 'dir'}"),
                              parse_output(f"type=oci,dest={tmp_path / 'img.tar'}")],
           store, tags=["app:v1"])
    assert _validate_layout_dir(tmp_path / "dir") == 1
    unpacked = tmp_path / "unpacked"
    with tarfile.open(tmp_path / "img.tar") as tar:
        tar.extractall(unpacked)
    assert _validate_layout_dir(unpacked) == 1


def test_the_store_layout_validates(store: Store, two_layer_result: BuildResult) -> None:
    export(two_layer_result, [], store, tags=["app:v1", "app:v2"])
    assert _validate_layout_dir(store.layout.path) == 2
