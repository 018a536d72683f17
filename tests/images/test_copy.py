"""`ocibuild copy` between every pair of transports, each result read back by skopeo
(which checks every blob's digest); registry-to-registry copies mount; compression
conversion."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from ocibuild.oci.image import load_image
from tests.images.conftest import (
    BaseImages,
    Cli,
    skopeo,
    skopeo_config_digest,
    skopeo_digest,
    skopeo_manifest,
)
from tests.support.registry_server import Proxy, RegistryServer

KINDS = ["oci", "oci-archive", "docker-archive", "docker", "store"]


def _ref(kind: str, tmp: Path, host: str, label: str) -> str:
    return {
        "oci": f"oci:{tmp / label}:t1",
        "oci-archive": f"oci-archive:{tmp / label}.tar:t1",
        "docker-archive": f"docker-archive:{tmp / label}.tar:example.com/copy/{label}:t1",
        "docker": f"docker://{host}/copy/{label}:t1",
        "store": f"store:copy-{label}:t1",
    }[kind]


@pytest.mark.parametrize(("src_kind", "dest_kind"),
                         [p for p in itertools.product(KINDS, KINDS) if p[0] != p[1]])
def test_copy_between_transports(src_kind: str, dest_kind: str, cli: Cli, images: BaseImages,
                                 http_registry: RegistryServer, tmp_path: Path) -> None:
    host = http_registry.host
    label = f"{src_kind}-to-{dest_kind}".replace("-", "")
    src = _ref(src_kind, tmp_path, host, f"src{label}")
    dest = _ref(dest_kind, tmp_path, host, f"dst{label}")
    cli.ok("copy", f"oci:{images.path}:app", src)
    out = cli.ok("copy", src, dest).stdout
    config_digest = skopeo_config_digest(f"oci:{images.path}:app", tmp_path)
    if dest_kind == "store":  # skopeo cannot read the store: copy it out again
        dest = _ref("oci", tmp_path, host, "fromstore")
        cli.ok("copy", _ref("store", tmp_path, host, f"dst{label}"), dest)
    assert skopeo_config_digest(dest, tmp_path) == config_digest
    if "docker-archive" not in (src_kind, dest_kind):  # a docker archive has no manifest
        assert skopeo_digest(dest, tmp_path) == images.app.digest
        assert images.app.digest in out


def test_copy_within_a_registry_mounts_the_layers(cli: Cli, images: BaseImages, proxy: Proxy,
                                                  tmp_path: Path) -> None:
    cli.ok("copy", f"oci:{images.path}:app", f"docker://{proxy.host}/mnt/a:1")
    proxy.reset()
    cli.ok("copy", f"docker://{proxy.host}/mnt/a:1", f"docker://{proxy.host}/mnt/b:1")
    layers = len(skopeo_manifest(f"oci:{images.path}:app", tmp_path)["layers"])
    mounts = proxy.requests("POST", r"mount=sha256")
    assert len(mounts) == layers + 1 and all(m.status == 201 for m in mounts)
    assert proxy.requests("GET", r"/blobs/sha256:") != []  # the config only
    assert len(proxy.requests("GET", r"/blobs/sha256:")) == 1
    assert proxy.requests("PUT", r"/blobs/uploads/") == []


@pytest.mark.parametrize("fmt", ["zstd", "gzip"])
def test_dest_compress_format(fmt: str, cli: Cli, images: BaseImages,
                              http_registry: RegistryServer, tmp_path: Path) -> None:
    zstd = tmp_path / "zstd"
    before = set(images.layout.blobs())
    cli.ok("copy", "--dest-compress-format", "zstd", f"oci:{images.path}:app", f"oci:{zstd}")
    if fmt == "zstd":  # from a layout to a registry, and from the store to a layout
        dest = f"docker://{http_registry.host}/conv/zstd:1"
        cli.ok("copy", "--dest-compress-format", "zstd", f"oci:{images.path}:app", dest)
        cli.ok("copy", f"oci:{images.path}:app", "store:conv:1")
        cli.ok("copy", "--dest-compress-format", "zstd", "conv:1", f"oci:{tmp_path / 'zs'}")
        assert {layer["mediaType"] for layer in
                skopeo_manifest(f"oci:{tmp_path / 'zs'}", tmp_path)["layers"]} == \
            {"application/vnd.oci.image.layer.v1.tar+zstd"}
    else:  # back from zstd to gzip
        dest = f"oci-archive:{tmp_path / 'gz.tar'}"
        cli.ok("copy", "--dest-compress-format", "gzip", f"oci:{zstd}", dest)
    manifest = skopeo_manifest(dest, tmp_path)
    assert {layer["mediaType"] for layer in manifest["layers"]} == \
        {f"application/vnd.oci.image.layer.v1.tar+{fmt}"}
    assert skopeo_config_digest(dest, tmp_path) == \
        skopeo_config_digest(f"oci:{images.path}:app", tmp_path)
    # the original's gzip stream is not promised back, its content is: the same diffIDs,
    # so the same config (checked above); the source layout gained no blob
    assert set(images.layout.blobs()) == before


def test_bad_transport_missing_source_and_a_directory_that_is_no_layout(
        cli: Cli, images: BaseImages, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine\n")
    proc = cli("copy", f"oci:{images.path}:app", f"oci:{tmp_path / 'mine'}:1")
    assert proc.returncode != 0 and "is not an OCI image layout" in proc.stderr
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    proc = cli("copy", "containers-storage:foo", f"oci:{tmp_path}/x")
    assert proc.returncode != 0 and "unsupported transport" in proc.stderr
    proc = cli("copy", f"oci:{tmp_path}/none:1", f"oci:{tmp_path}/x")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr


def _two_platform_layout(cli: Cli, images: BaseImages, path: Path) -> str:
    """An OCI layout whose tag `multi` names an index of two platforms' images (the app
    as linux/amd64, the base as linux/arm64); returns the index's digest."""
    from ocibuild.oci.descriptor import Descriptor
    from ocibuild.oci.layout import ImageLayout
    from ocibuild.oci.manifest import Index
    from ocibuild.oci.platform import Platform

    cli.ok("copy", f"oci:{images.path}:app", f"oci:{path}:app")
    cli.ok("copy", f"oci:{images.path}:latest", f"oci:{path}:base")
    layout = ImageLayout.open(path)
    entries = []
    for tag, plat in (("app", "linux/amd64"), ("base", "linux/arm64")):
        d = layout.resolve(tag)
        entries.append(Descriptor(d.media_type, d.digest, d.size, platform=Platform.parse(plat)))
    desc = layout.put_manifest(Index(tuple(entries)))
    layout.tag("multi", desc)
    return desc.digest


def test_copy_all_keeps_a_multi_platform_image_whole(cli: Cli, images: BaseImages,
                                                     http_registry: RegistryServer,
                                                     tmp_path: Path) -> None:
    index_digest = _two_platform_layout(cli, images, tmp_path / "multi")
    src = f"oci:{tmp_path / 'multi'}:multi"
    registry = f"docker://{http_registry.host}/copy/multi:1"
    hops = [registry, "store:multi:1", f"oci-archive:{tmp_path / 'multi.tar'}:m",
            f"docker://{http_registry.host}/copy/multi-again:1", f"oci:{tmp_path / 'out'}:m"]
    for dest in hops:
        assert index_digest in cli.ok("copy", "--all", src, dest).stdout
        src = dest
    pulled = tmp_path / "skopeo-all"
    skopeo("copy", "--quiet", "--all", "--preserve-digests", "--src-tls-verify=false",
           hops[3], f"oci:{pulled}:m")
    assert skopeo_digest(f"oci:{pulled}:m", tmp_path) == index_digest
    assert skopeo_digest(f"oci:{tmp_path / 'out'}:m", tmp_path) == index_digest
    # without --all, one platform's image: this host's
    cli.ok("copy", "--platform", "linux/arm64", hops[0], f"oci:{tmp_path / 'one'}:m")
    assert skopeo_digest(f"oci:{tmp_path / 'one'}:m", tmp_path) == images.base.digest
    proc = cli("copy", "--all", hops[0], f"docker-archive:{tmp_path / 'x.tar'}")
    assert proc.returncode != 0 and "without --all" in proc.stderr


def test_copy_shows_each_blob_transfer(cli: Cli, images: BaseImages,
                                       http_registry: RegistryServer) -> None:
    dest = f"docker://{http_registry.host}/copy/progress:1"
    proc = cli.ok("copy", "--progress", "plain", f"oci:{images.path}:app", dest)
    layers = load_image(images.layout, "app").manifest.layers
    assert f"#1 copy oci:{images.path}:app {dest}" in proc.stderr
    for layer in layers:
        assert re.search(rf"#1 {layer.digest[:19]}\S* .*/ .* done", proc.stderr), proc.stderr
    assert "#1 DONE" in proc.stderr and "CACHED" not in proc.stderr
    back = cli.ok("copy", "--progress", "plain", dest, "store:progress:1")
    assert all(layer.digest[:19] in back.stderr for layer in layers)
    assert cli.ok("copy", "--progress", "quiet", dest, "store:q:1").stderr == ""
