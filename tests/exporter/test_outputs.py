from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from ocibuild.cache import Store
from ocibuild.errors import OcibuildError, UsageError
from ocibuild.exporter import (
    BuildResult,
    OutputSpec,
    export,
    parse_output,
    write_iidfile,
    write_metadata_file,
)


def _skopeo_inspect(ref: str) -> dict:
    out = subprocess.run(["skopeo", "inspect", ref], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def _skopeo_config(ref: str) -> dict:
    out = subprocess.run(["skopeo", "inspect", "--config", ref], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


def test_parse_output_like_buildx() -> None:
    assert parse_output("type=oci,dest=out.tar") == OutputSpec("oci", {"dest": "out.tar"})
    assert parse_output("type=local,dest=a dir") == OutputSpec("local", {"dest": "a dir"})
    assert parse_output("./out") == OutputSpec("local", {"dest": "./out"})
    assert parse_output('type=image,"name=a:1,b:2"') == OutputSpec("image", {"name": "a:1,b:2"})
    for bad, message in [("type=oci", "needs dest"), ("type=ftp,dest=x", "unknown type"),
                         ("dest=x", "no type"), ("type=oci,dest", "not key=value"),
                         ("-", "standard output")]:
        with pytest.raises(UsageError, match=message):
            parse_output(bad)


def test_default_output_is_the_store_with_every_tag(store: Store,
                                                    two_layer_result: BuildResult) -> None:
    report = export(two_layer_result, [], store, tags=["app", "localhost:5000/app:v1"])
    assert report.names == ("docker.io/library/app:latest", "localhost:5000/app:v1")
    for name in ("app:latest", "localhost:5000/app:v1"):
        image = store.resolve_image(name)
        assert image is not None and image.digest == report.manifest_digest
    assert report.config_digest == store.resolve_image("app").manifest.config.digest
    assert report.image_id == report.config_digest


def test_oci_directory_is_readable_by_skopeo(store: Store, two_layer_result: BuildResult,
                                             tmp_path: Path) -> None:
    dest = tmp_path / "out" / "layout"
    report = export(two_layer_result, [parse_output(f"type=oci,dest={dest}")], store,
                    tags=["app:1.0"])
    info = _skopeo_inspect(f"oci:{dest}:1.0")
    assert info["Digest"] == report.manifest_digest
    assert len(info["Layers"]) == 2
    assert _skopeo_config(f"oci:{dest}:1.0")["config"]["Cmd"] == ["/bin/tool"]
    index = json.loads((dest / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == \
        "docker.io/library/app:1.0"
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".tmp-")]
    # a second image added to the same layout keeps the first
    export(two_layer_result, [parse_output(f"type=oci,dest={dest}")], store, tags=["app:2.0"])
    assert {m["annotations"]["org.opencontainers.image.ref.name"]
            for m in json.loads((dest / "index.json").read_text())["manifests"]} == {"1.0", "2.0"}


def test_oci_tar_is_readable_by_skopeo(store: Store, two_layer_result: BuildResult,
                                       tmp_path: Path) -> None:
    dest = tmp_path / "image.tar"
    report = export(two_layer_result, [parse_output(f"type=oci,dest={dest}")], store,
                    tags=["app"])
    assert _skopeo_inspect(f"oci-archive:{dest}:latest")["Digest"] == report.manifest_digest
    # the same build gives the same bytes
    again = tmp_path / "again.tar"
    export(two_layer_result, [parse_output(f"type=oci,dest={again}")], store, tags=["app"])
    assert again.read_bytes() == dest.read_bytes()


def test_docker_archive_loads_with_podman_and_skopeo(store: Store, two_layer_result: BuildResult,
                                                     tmp_path: Path) -> None:
    dest = tmp_path / "docker.tar"
    report = export(two_layer_result, [parse_output(f"type=docker,dest={dest}")], store,
                    tags=["myapp:1", "other/name"])
    with tarfile.open(dest) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["myapp:1", "other/name:latest"]
    info = _skopeo_inspect(f"docker-archive:{dest}")
    assert len(info["Layers"]) == 2
    assert _skopeo_config(f"docker-archive:{dest}")["config"]["Env"] == ["PATH=/bin"]

    storage = Path(tempfile.mkdtemp(prefix="ocp-", dir="/tmp"))  # podman: runroot <= 50 chars
    podman = ["podman", "--root", str(storage / "root"), "--runroot", str(storage / "run"),
              "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend",
              "none"]
    try:
        load = subprocess.run([*podman, "load", "-i", str(dest)], capture_output=True,
                              text=True, timeout=120)
        assert load.returncode == 0, load.stderr
        out = subprocess.run([*podman, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}",
                              "--no-trunc"], capture_output=True, text=True, check=True)
        lines = sorted(out.stdout.split("\n")[:-1])
        assert lines == sorted([f"localhost/myapp:1 {report.config_digest}",
                                f"localhost/other/name:latest {report.config_digest}"]) or \
            lines == sorted([f"docker.io/library/myapp:1 {report.config_digest}",
                             f"docker.io/other/name:latest {report.config_digest}"])
    finally:
        subprocess.run([*podman, "system", "reset", "--force"], capture_output=True)
        shutil.rmtree(storage, ignore_errors=True)


def test_local_directory_is_the_final_filesystem(store: Store, two_layer_result: BuildResult,
                                                 tmp_path: Path) -> None:
    dest = tmp_path / "rootfs"
    export(two_layer_result, [parse_output(f"type=local,dest={dest}")], store)
    assert (dest / "etc/motd").read_text() == "hello\n"
    assert (dest / "data/new").read_text() == "new\n"
    assert not (dest / "data/old").exists()  # deleted by the second layer
    assert os.stat(dest / "bin/tool").st_mode & 0o777 == 0o755
    # into a directory that already holds other files: those stay, ours replace
    existing = tmp_path / "existing"
    (existing / "etc").mkdir(parents=True)
    (existing / "keep.txt").write_text("mine")
    (existing / "etc/stale").write_text("stale")
    export(two_layer_result, [parse_output(f"type=local,dest={existing}")], store)
    assert (existing / "keep.txt").read_text() == "mine"
    assert (existing / "etc/motd").read_text() == "hello\n"
    assert not (existing / "etc/stale").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_several_outputs_at_once_and_metadata_files(store: Store,
                                                    two_layer_result: BuildResult,
                                                    tmp_path: Path) -> None:
    outputs = [parse_output(f"type=oci,dest={tmp_path / 'o.tar'}"),
               parse_output(f"type=local,dest={tmp_path / 'fs'}")]
    report = export(two_layer_result, outputs, store, tags=["multi"])
    assert (tmp_path / "o.tar").is_file() and (tmp_path / "fs/etc/motd").is_file()
    assert store.resolve_image("multi") is None  # not asked for the store
    write_iidfile(tmp_path / "iid", report)
    assert (tmp_path / "iid").read_text() == report.manifest_digest
    write_metadata_file(tmp_path / "meta.json", report)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["containerimage.digest"] == report.manifest_digest
    assert meta["containerimage.config.digest"] == report.config_digest
    assert meta["containerimage.descriptor"]["digest"] == report.manifest_digest
    assert meta["image.name"] == "docker.io/library/multi:latest"


def test_failed_export_leaves_nothing_behind(store: Store, two_layer_result: BuildResult,
                                             tmp_path: Path) -> None:
    # lose a layer blob: every output must fail without leaving a partial file
    store.layout.blob_path(two_layer_result.layers[1].descriptor.digest).unlink()
    out = tmp_path / "out"
    out.mkdir()
    for spec in (f"type=docker,dest={out / 'd.tar'}", f"type=oci,dest={out / 'o.tar'}",
                 f"type=oci,dest={out / 'dir'}", f"type=local,dest={out / 'fs'}"):
        with pytest.raises(OcibuildError):
            export(two_layer_result, [parse_output(spec)], store)
    assert list(out.iterdir()) == []
