"""What a push sends, counted by a proxy in front of the registry: one request for an
image the tag already names, nothing again for blobs the repository has, mounts for
blobs another repository has, blobs in parallel, several tags for one upload."""

from __future__ import annotations

import os
from pathlib import Path

from ocibuild.oci.image import load_image, write_image
from ocibuild.oci.layout import ImageLayout
from tests.registry.conftest import BaseImages, Cli
from tests.registry.images import add_dir_layer
from tests.support.registry_server import Proxy

UPLOAD = r"/blobs/uploads/"


def _blob_count(images: BaseImages, tag: str) -> int:
    image = load_image(images.layout, tag)
    return 1 + len(image.manifest.layers)


def test_second_push_uploads_nothing_and_another_repository_mounts_every_blob(
        proxy: Proxy, images: BaseImages, cli: Cli) -> None:
    blobs = _blob_count(images, "app")
    first = f"{proxy.host}/eff/app:1"
    cli.ok("push", f"oci:{images.path}:app", first)
    assert len(proxy.requests("PUT", UPLOAD)) == blobs
    assert [s.status for s in proxy.requests("PUT", UPLOAD)] == [201] * blobs

    proxy.reset()
    out = cli.ok("push", f"oci:{images.path}:app", first)
    # the tag already names this manifest: after the ping, one HEAD and nothing else
    assert [(s.method, s.path) for s in proxy.seen] == [
        ("GET", "/v2/"), ("HEAD", "/v2/eff/app/manifests/1")]
    assert f"{first}@{images.app.digest}" in out.stdout
    assert f"{blobs} already present; 1 of 1 names already held the image" in out.stderr

    proxy.reset()
    out = cli.ok("push", f"oci:{images.path}:app", f"{proxy.host}/eff-other/app:1")
    mounts = proxy.requests("POST", r"mount=sha256")
    assert len(mounts) == blobs
    assert all(m.status == 201 and "from=eff%2Fapp" in m.query for m in mounts)
    assert proxy.requests("PUT", UPLOAD) == [] and proxy.requests("PATCH") == []
    assert f"{blobs} mounted" in out.stderr


def test_several_tags_share_one_upload(proxy: Proxy, images: BaseImages, cli: Cli) -> None:
    refs = [f"{proxy.host}/tags/app:{t}" for t in ("v1", "v1.2", "latest")]
    out = cli.ok("push", f"oci:{images.path}:app", *refs).stdout
    assert len(proxy.requests("PUT", UPLOAD)) == _blob_count(images, "app")
    manifest_puts = proxy.requests("PUT", "/manifests/")
    assert sorted(s.path.rsplit("/", 1)[1] for s in manifest_puts) == ["latest", "v1", "v1.2"]
    for ref in refs:
        assert f"{ref}@{images.app.digest}" in out


def test_blobs_upload_and_download_in_parallel(proxy: Proxy, images: BaseImages, cli: Cli,
                                  tmp_path: Path) -> None:
    """Four 3 MB layers: their uploads (and downloads) overlap in time."""
    layout = ImageLayout.init(tmp_path / "wide")
    base = load_image(images.layout, "latest")
    config = base.config
    layers = []
    for i in range(4):
        d = tmp_path / f"l{i}"
        d.mkdir()
        (d / f"data{i}").write_bytes(os.urandom(3 << 20))
        desc, diff_id = add_dir_layer(layout, d, compression="none")
        layers.append(desc)
        config = config.with_layer(diff_id, base.config.history[0])
    layout.put_bytes(images.layout.read_blob(base.manifest.layers[0].digest))
    write_image(layout, config, [base.manifest.layers[0], *layers], tags=["wide"])
    cli.ok("push", f"oci:{layout.path}:wide", f"{proxy.host}/wide/img:1", "--jobs", "4")
    assert len(proxy.requests("PUT", UPLOAD)) == 6
    assert proxy.max_concurrency("PUT", UPLOAD) >= 2
    # and the layers come back in parallel too
    cli.ok("pull", f"{proxy.host}/wide/img:1", "--output", f"oci:{tmp_path}/back",
           "--jobs", "4")
    assert len(proxy.requests("GET", "/blobs/sha256:")) == 6
    assert proxy.max_concurrency("GET", "/blobs/sha256:") >= 2


def test_push_names_from_the_store_mounts_what_the_store_pulled(
        proxy: Proxy, images: BaseImages, cli: Cli, tmp_path: Path) -> None:
    """What the engine's `--push` calls: blobs pulled from one repository of a registry
    are mounted into another repository of it, and every name gets the manifest."""
    from ocibuild.cache.store import Store
    from ocibuild.registry import push_names, resolve_source

    cli.ok("push", f"oci:{images.path}:app", f"{proxy.host}/exp-src/app:1")
    store = Store.open(tmp_path / "root")
    image = resolve_source(f"{proxy.host}/exp-src/app:1", store)
    proxy.reset()
    names = [f"{proxy.host}/exp-dst/app:1", f"{proxy.host}/exp-dst/app:latest"]
    report = push_names(store.layout, image.descriptor, names, store=store)
    blobs = _blob_count(images, "app")
    assert report.mounted == blobs and report.uploaded == 0
    assert len(proxy.requests("POST", "mount=")) == blobs
    assert proxy.requests("PUT", UPLOAD) == []
    assert len(proxy.requests("PUT", "/manifests/")) == 2


def test_a_tag_naming_another_image_is_moved(proxy: Proxy, images: BaseImages,
                                             cli: Cli) -> None:
    ref = f"{proxy.host}/moved/app:stable"
    cli.ok("push", f"oci:{images.path}:latest", ref)
    proxy.reset()
    cli.ok("push", f"oci:{images.path}:app", ref)
    puts = proxy.requests("PUT", "/manifests/")
    assert [s.path for s in puts] == ["/v2/moved/app/manifests/stable"]
    back = cli.ok("pull", ref, "--output", f"oci:{cli.home}/back:x").stdout
    assert images.app.digest in back
