"""`ocibuild save` in each format, read by skopeo and loaded by the test dockerd;
`ocibuild load` of each format; `inspect docker://` fetches no layer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.container.conftest import dockerd  # noqa: F401  (fixture)
from tests.images.conftest import (
    BaseImages,
    Cli,
    skopeo_config_digest,
    skopeo_digest,
    skopeo_manifest,
)
from tests.support.dockerd import Dockerd
from tests.support.paths import OCIBUILD
from tests.support.registry_server import Proxy

FORMATS = {"docker-archive": "docker-archive:{}", "oci-archive": "oci-archive:{}",
           "oci-dir": "oci:{}"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_save_is_read_by_skopeo_and_loaded_back(fmt: str, stocked: Cli, images: BaseImages,
                                                 tmp_path: Path) -> None:
    stocked.ok("tag", "app:1", "example.com/team/app:2")
    out = tmp_path / ("saved" if fmt == "oci-dir" else "saved.tar")
    stocked.ok("save", "--format", fmt, "-o", str(out), "app:1", "example.com/team/app:2")
    ref = FORMATS[fmt].format(out)
    if fmt != "docker-archive":
        ref += ":docker.io/library/app:1"  # each image is named in the index
        assert skopeo_digest(ref, tmp_path) == images.app.digest
    assert skopeo_config_digest(ref, tmp_path) == \
        skopeo_config_digest(f"oci:{images.path}:app", tmp_path)

    other = Cli(tmp_path / "other-home")
    other.home.mkdir()
    loaded = other.ok("load", str(out)).stdout
    assert "Loaded image: docker.io/library/app:1" in loaded
    names = other.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    rows = sorted(line.split() for line in names.splitlines())
    assert [r[0] for r in rows] == ["app:1", "example.com/team/app:2"]
    assert rows[0][1] == rows[1][1] == \
        skopeo_config_digest(f"oci:{images.path}:app", tmp_path)[7:19]


def test_save_of_two_images_as_oci_archive(stocked: Cli, images: BaseImages,
                                           tmp_path: Path) -> None:
    stocked.ok("copy", f"oci:{images.path}:latest", "store:busybox:1.36")
    out = tmp_path / "two.tar"
    stocked.ok("save", "--format", "oci-archive", "-o", str(out), "app:1", "busybox:1.36")
    assert skopeo_digest(f"oci-archive:{out}:docker.io/library/busybox:1.36", tmp_path) == \
        images.base.digest
    proc = stocked("save", "-o", str(tmp_path / "two-docker.tar"), "app:1", "busybox:1.36")
    assert proc.returncode != 0 and "oci-archive" in proc.stderr


def test_load_of_a_skopeo_docker_archive_and_layout(cli: Cli, images: BaseImages,
                                                    tmp_path: Path) -> None:
    from tests.images.conftest import skopeo

    archive = tmp_path / "skopeo.tar"
    skopeo("copy", "--quiet", f"oci:{images.path}:app",
           f"docker-archive:{archive}:example.com/skopeo/app:3")
    assert "example.com/skopeo/app:3" in cli.ok("load", "-i", str(archive)).stdout
    piped = Cli(tmp_path / "piped")
    piped.home.mkdir()
    with archive.open("rb") as f:  # as `docker load < FILE`
        proc = subprocess.run([str(OCIBUILD), "load"], stdin=f, capture_output=True,
                              text=True, env=piped.env(), timeout=60)
    assert proc.returncode == 0 and "example.com/skopeo/app:3" in proc.stdout, proc.stderr
    layout = tmp_path / "skopeo-layout"
    skopeo("copy", "--quiet", f"oci:{images.path}:latest", f"oci:{layout}:1.36")
    assert "localhost/skopeo-layout:1.36" in cli.ok("load", str(layout)).stdout
    inspect = json.loads(cli.ok("inspect", "--format", "json",
                                "localhost/skopeo-layout:1.36").stdout)
    assert inspect["digest"] == images.base.digest
    proc = cli("load", str(tmp_path))
    assert proc.returncode != 0 and "not an OCI image layout" in proc.stderr


def test_saved_docker_archive_loads_into_dockerd(stocked: Cli, dockerd: Dockerd,  # noqa: F811
                                                 tmp_path: Path) -> None:
    out = tmp_path / "for-docker.tar"
    stocked.ok("save", "-o", str(out), "app:1")
    dockerd.docker("load", "-i", str(out))
    image_id = stocked.ok("inspect", "--format", "{{.Id}}", "app:1").stdout.strip()
    shown = dockerd.docker("image", "inspect", "--format", "{{.Id}}", "app:1")
    assert shown.stdout.strip() == image_id


def test_inspect_of_a_registry_image_fetches_no_layer(cli: Cli, images: BaseImages,
                                                      proxy: Proxy, tmp_path: Path) -> None:
    ref = f"{proxy.host}/insp/app:1"
    cli.ok("copy", f"oci:{images.path}:app", f"docker://{ref}")
    proxy.reset()
    fields = cli.ok("inspect", "--format", "{{.Digest}} {{.Os}} {{json .RootFS.Layers}}",
                    f"docker://{ref}").stdout.split()
    assert fields[0] == images.app.digest and fields[1] == "linux"
    manifest = skopeo_manifest(f"oci:{images.path}:app", tmp_path)
    assert len(json.loads(fields[2])) == len(manifest["layers"])
    blob_gets = proxy.requests("GET", r"/blobs/sha256:")
    assert [s.path.rsplit("/", 1)[1] for s in blob_gets] == [manifest["config"]["digest"]]
    text = cli.ok("inspect", f"docker://{ref}").stdout
    assert f"Digest:     {images.app.digest}" in text
