"""Push the busybox base and an image derived from it to a real registry in each
set-up (plain http, TLS with a test CA, htpasswd basic auth, bearer tokens), read
them back with skopeo and with our own pull, and compare digests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocibuild.oci.image import load_image
from ocibuild.oci.layout import ImageLayout
from tests.registry.conftest import BaseImages, Cli, registry_flags, skopeo_pull_digest
from tests.support.registry_server import PASSWORD, USER, RegistryServer

SETUPS = ["http_registry", "tls_registry", "htpasswd_registry", "token_registry"]


@pytest.mark.parametrize("setup", SETUPS)
def test_push_base_and_derived_then_pull_back(setup: str, request: pytest.FixtureRequest,
                                              images: BaseImages, cli: Cli,
                                              tmp_path: Path) -> None:
    server: RegistryServer = request.getfixturevalue(setup)
    flags = registry_flags(server)
    if server.mode in ("htpasswd", "token"):
        cli.ok("login", server.host, "-u", USER, "--password-stdin", *flags,
               input=PASSWORD + "\n")
    base_ref = f"{server.host}/rt-{server.mode}/busybox:1.36"
    app_ref = f"{server.host}/rt-{server.mode}/app:v1"
    cli.ok("push", f"oci:{images.path}:latest", base_ref, *flags)
    out = cli.ok("push", f"oci:{images.path}:app", app_ref, f"{app_ref[:-3]}:latest",
                 *flags).stdout
    assert f"{app_ref}@{images.app.digest}" in out

    assert skopeo_pull_digest(server, base_ref, tmp_path) == images.base.digest
    assert skopeo_pull_digest(server, app_ref, tmp_path) == images.app.digest
    assert skopeo_pull_digest(server, app_ref[:-3] + ":latest", tmp_path) == images.app.digest

    dest = tmp_path / "pulled"
    cli.ok("pull", app_ref, "--output", f"oci:{dest}:got", *flags)
    pulled = load_image(ImageLayout.open(dest), "got")
    assert pulled.digest == images.app.digest
    assert [x.digest for x in pulled.manifest.layers] == \
        [x.digest for x in load_image(images.layout, "app").manifest.layers]


def test_pull_into_the_store_skips_blobs_it_has(http_registry: RegistryServer,
                                                images: BaseImages, cli: Cli) -> None:
    base_ref = f"{http_registry.host}/store-pull/busybox:1"
    app_ref = f"{http_registry.host}/store-pull/app:1"
    cli.ok("push", f"oci:{images.path}:latest", base_ref)
    cli.ok("push", f"oci:{images.path}:app", app_ref)
    cli.ok("pull", base_ref)
    cli.ok("pull", app_ref)
    content = ImageLayout.open(cli.home / "root" / "content")
    tags = content.tags()
    assert tags[base_ref].digest == images.base.digest
    assert tags[app_ref].digest == images.app.digest
    # the store can push what it pulled, by its local name
    out = cli.ok("push", app_ref, f"{http_registry.host}/store-pull/again:1").stdout
    assert images.app.digest in out


def test_pull_selects_the_platform_from_an_index(http_registry: RegistryServer,
                                                 images: BaseImages, cli: Cli,
                                                 tmp_path: Path) -> None:
    """An index with two platforms: --platform picks the matching manifest."""
    from dataclasses import replace

    from ocibuild.oci.image import write_image
    from ocibuild.oci.manifest import Index
    from ocibuild.oci.platform import Platform

    layout = ImageLayout.init(tmp_path / "multi")
    src = load_image(images.layout, "latest")
    for blob in (src.manifest.config, *src.manifest.layers):
        layout.put_bytes(images.layout.read_blob(blob.digest))
    amd = write_image(layout, replace(src.config, architecture="amd64", variant=""),
                      src.manifest.layers)
    arm = write_image(layout, replace(src.config, architecture="arm64", variant="v8"),
                      src.manifest.layers)
    index_desc = layout.put_manifest(Index((amd, arm)))
    layout.tag("multi", index_desc)
    ref = f"{http_registry.host}/multi/busybox:1"
    cli.ok("push", f"oci:{layout.path}:multi", ref)

    for wanted, expected in (("linux/arm64", arm), ("linux/amd64", amd)):
        dest = tmp_path / wanted.replace("/", "-")
        cli.ok("pull", ref, "--platform", wanted, "--output", f"oci:{dest}")
        got = ImageLayout.open(dest).resolve("1")
        assert got.digest == expected.digest
        assert got.platform is not None and Platform.parse(wanted).matches(got.platform)
    bad = cli("pull", ref, "--platform", "linux/s390x", "--output", f"oci:{tmp_path}/none")
    assert bad.returncode != 0
    assert "linux/s390x" in bad.stderr and "linux/arm64" in bad.stderr


def test_pull_docker_schema2_media_types(http_registry: RegistryServer, images: BaseImages,
                                         cli: Cli, tmp_path: Path) -> None:
    """An image skopeo pushed as Docker v2 schema 2 pulls with its media types kept."""
    import subprocess

    ref = f"{http_registry.host}/docker-types/busybox:1"
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--format",
                    "v2s2", f"oci:{images.path}:latest", f"docker://{ref}"],
                   check=True, capture_output=True, timeout=120)
    dest = tmp_path / "docker-types"
    cli.ok("pull", ref, "--output", f"oci:{dest}")
    layout = ImageLayout.open(dest)
    image = load_image(layout, "1")
    assert image.manifest.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    raw = json.loads(layout.read_blob(image.digest))
    assert raw["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert image.config.diff_ids == load_image(images.layout, "latest").config.diff_ids


def test_tls_trust_from_a_certs_d_directory_and_a_clear_error_without_it(
        tls_registry: RegistryServer, images: BaseImages, cli: Cli, tmp_path: Path) -> None:
    import shutil

    from ocibuild.registry import ClientPool, RegistryOptions, parse_reference, pull

    assert tls_registry.certs is not None
    ref = f"{tls_registry.host}/certsd/busybox:1"
    cli.ok("push", f"oci:{images.path}:latest", ref, "--registry-ca",
           str(tls_registry.certs.ca_cert))
    certs_d = tmp_path / "certs.d"
    (certs_d / tls_registry.host).mkdir(parents=True)
    shutil.copy(tls_registry.certs.ca_cert, certs_d / tls_registry.host / "ca.crt")
    options = RegistryOptions(certs_dirs=(certs_d,))
    image = pull(parse_reference(ref), ImageLayout.init(tmp_path / "p"),
                 clients=ClientPool(options))
    assert image.digest == images.base.digest

    untrusted = cli("pull", ref, "--output", f"oci:{tmp_path}/x")
    assert untrusted.returncode != 0
    assert ref in untrusted.stderr and "certificate verify failed" in untrusted.stderr
    assert "--registry-ca" in untrusted.stderr and "Traceback" not in untrusted.stderr


def test_insecure_registry_flag_reaches_plain_http(http_registry: RegistryServer,
                                                   images: BaseImages, cli: Cli) -> None:
    ref = f"{http_registry.host}/insecure/busybox:1"
    out = cli.ok("push", f"oci:{images.path}:latest", ref, "--insecure-registry",
                 http_registry.host).stdout
    assert images.base.digest in out
