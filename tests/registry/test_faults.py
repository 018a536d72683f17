"""Faults: a 500 on an upload, a dropped download, bad credentials, an unknown tag, a
blob whose bytes do not match its digest, an unreachable registry."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ocibuild.oci import digest as _digest
from ocibuild.oci.image import load_image
from ocibuild.oci.layout import ImageLayout
from ocibuild.registry import BlobSources, ClientPool, RegistryOptions, parse_reference
from ocibuild.registry.push import push_image
from tests.registry.conftest import BaseImages, Cli, skopeo_pull_digest
from tests.support.registry_server import Fault, Proxy, RegistryServer, free_port


def _top_layer(images: BaseImages) -> str:
    return load_image(images.layout, "app").manifest.layers[-1].digest


def _base_layer(images: BaseImages) -> tuple[str, int]:
    layer = load_image(images.layout, "latest").manifest.layers[0]
    return layer.digest, layer.size


def test_a_500_on_one_blob_upload_is_retried(proxy: Proxy, http_registry: RegistryServer,
                                            images: BaseImages, cli: Cli,
                                            tmp_path: Path) -> None:
    hexpart = _digest.hex_of(_top_layer(images))
    fault = proxy.add_fault(Fault("PUT", rf"/blobs/uploads/.*digest=sha256%3A{hexpart}", "500"))
    cli.ok("push", f"oci:{images.path}:app", f"{proxy.host}/faults/put500:1")
    assert fault.fired == 1
    puts = proxy.requests("PUT", rf"digest=sha256%3A{hexpart}")
    assert [p.status for p in puts] == [500, 201]
    ref = f"{http_registry.host}/faults/put500:1"
    assert skopeo_pull_digest(http_registry, ref, tmp_path) == images.app.digest


def test_a_failed_chunk_resumes_at_the_offset_the_registry_holds(
        proxy: Proxy, http_registry: RegistryServer, images: BaseImages,
        tmp_path: Path) -> None:
    """With 256 KiB chunks the base layer goes up in PATCHes; the third one fails and
    the upload continues from what the registry confirms it has."""
    digest, size = _base_layer(images)
    assert size > 3 * (256 << 10)
    fault = proxy.add_fault(Fault("PATCH", r"/blobs/uploads/", "500", skip=2))
    options = RegistryOptions(chunk_size=256 << 10, jobs=1)
    ref = parse_reference(f"{proxy.host}/faults/chunked:1")
    report = push_image(images.layout, images.base, [ref], clients=ClientPool(options),
                        sources=BlobSources())
    assert fault.fired == 1 and report.uploaded == 2
    statuses = [s.status for s in proxy.requests("PATCH")]
    assert statuses.count(500) == 1 and statuses.count(202) >= 4
    assert [s.status for s in proxy.requests("GET", r"/blobs/uploads/")] == [204]
    assert skopeo_pull_digest(http_registry, f"{http_registry.host}/faults/chunked:1",
                              tmp_path) == images.base.digest


def test_a_dropped_download_resumes_with_range_and_is_verified(
        proxy: Proxy, images: BaseImages, cli: Cli, tmp_path: Path) -> None:
    digest, size = _base_layer(images)
    ref = f"{proxy.host}/faults/drop:1"
    cli.ok("push", f"oci:{images.path}:latest", ref)
    proxy.reset()
    fault = proxy.add_fault(Fault("GET", rf"/blobs/{digest}", "drop", after=size // 3))
    dest = tmp_path / "pulled"
    cli.ok("pull", ref, "--output", f"oci:{dest}")
    assert fault.fired == 1
    gets = proxy.requests("GET", rf"/blobs/{digest}")
    assert len(gets) == 2
    assert gets[0].range == "" and gets[1].range.startswith("bytes=")
    assert int(gets[1].range[len("bytes="):-1]) > 0
    layout = ImageLayout.open(dest)
    with layout.open_blob(digest, size) as reader:
        while reader.read(1 << 20):
            pass  # verified at the end
    assert load_image(layout, "1").digest == images.base.digest


def test_a_blob_that_does_not_match_its_digest_is_rejected(
        proxy: Proxy, images: BaseImages, cli: Cli, tmp_path: Path) -> None:
    top = _top_layer(images)
    ref = f"{proxy.host}/faults/corrupt:1"
    cli.ok("push", f"oci:{images.path}:app", ref)
    proxy.add_fault(Fault("GET", rf"/blobs/{top}", "corrupt", times=-1))
    dest = tmp_path / "pulled"
    proc = cli("pull", ref, "--output", f"oci:{dest}")
    assert proc.returncode != 0
    assert top in proc.stderr and "Traceback" not in proc.stderr
    assert ref in proc.stderr
    layout = ImageLayout.open(dest)
    assert not layout.has_blob(top)
    assert layout.tags() == {}
    assert not [n for n in os.listdir(dest) if n.startswith(".tmp-")]


@pytest.mark.parametrize("setup", ["htpasswd_registry", "token_registry"])
def test_wrong_credentials_fail_with_401_naming_the_reference(
        setup: str, request: pytest.FixtureRequest, images: BaseImages, cli: Cli,
        tmp_path: Path) -> None:
    server: RegistryServer = request.getfixturevalue(setup)
    cli.login_file(server.host, password="not-the-password")
    ref = f"{server.host}/faults/creds:1"
    for args in (("push", f"oci:{images.path}:latest", ref),
                 ("pull", ref, "--output", f"oci:{tmp_path}/x")):
        proc = cli(*args)
        assert proc.returncode != 0, proc.stdout
        assert ref in proc.stderr and "401" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    bad_login = cli("login", server.host, "-u", "tester", "--password-stdin", input="nope\n")
    assert bad_login.returncode != 0 and "401" in bad_login.stderr


def test_an_unknown_tag_fails_with_404(http_registry: RegistryServer, images: BaseImages,
                                       cli: Cli, tmp_path: Path) -> None:
    cli.ok("push", f"oci:{images.path}:latest", f"{http_registry.host}/faults/known:1")
    ref = f"{http_registry.host}/faults/known:no-such-tag"
    proc = cli("pull", ref, "--output", f"oci:{tmp_path}/x")
    assert proc.returncode != 0
    assert ref in proc.stderr and "404" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unreachable_registry_fails_fast(cli: Cli, tmp_path: Path) -> None:
    ref = f"127.0.0.1:{free_port()}/nobody/home:1"
    started = time.monotonic()
    proc = cli("pull", ref, "--output", f"oci:{tmp_path}/x")
    assert proc.returncode != 0
    assert time.monotonic() - started < 15
    assert "cannot reach" in proc.stderr and ref in proc.stderr
    assert "Traceback" not in proc.stderr
