"""Image sources without a registry (oci-layout://, docker-archive://), build contexts,
and what resolve_source does for the build engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ocibuild.cache.store import Store
from ocibuild.errors import UsageError
from ocibuild.oci import digest as _digest
from ocibuild.oci.image import load_image
from ocibuild.registry import parse_build_context, resolve_source
from tests.registry.conftest import BaseImages, Cli
from tests.support.paths import REPO
from tests.support.registry_server import RegistryServer, free_port

RESOLVE = """
import json, sys
from ocibuild.cache.store import Store
from ocibuild.registry import resolve_source
store = Store.open(sys.argv[1])
image = resolve_source(sys.argv[2], store)
print(json.dumps({"digest": image.digest, "layers": [l.digest for l in image.manifest.layers],
                  "diff_ids": list(image.config.diff_ids)}))
"""


def _resolve_offline(root: Path, source: str) -> subprocess.CompletedProcess[str]:
    """resolve_source in a fresh network namespace: no interface, not even loopback up."""
    return subprocess.run(["unshare", "--net", sys.executable, "-c", RESOLVE, str(root), source],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def test_air_gapped_oci_layout_source_needs_no_network(images: BaseImages,
                                                       tmp_path: Path) -> None:
    root = tmp_path / "store"
    proc = _resolve_offline(root, f"oci-layout://{images.path}:latest")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["digest"] == images.base.digest
    store = Store.open(root)
    for digest in got["layers"]:
        assert store.layout.has_blob(digest)
    assert load_image(store.layout, images.base.digest).digest == images.base.digest
    # by digest, too
    proc = _resolve_offline(root, f"oci-layout://{images.path}@{images.app.digest}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["digest"] == images.app.digest
    # and a registry reference really cannot be reached in that namespace
    proc = _resolve_offline(root, f"docker-image://127.0.0.1:{free_port()}/x/y:1")
    assert proc.returncode != 0 and "cannot reach" in proc.stderr


def test_air_gapped_docker_archive_source(images: BaseImages, tmp_path: Path) -> None:
    archive = tmp_path / "busybox.tar"
    subprocess.run(["skopeo", "copy", "--quiet", f"oci:{images.path}:app",
                    f"docker-archive:{archive}:example.com/busybox-app:1"],
                   check=True, capture_output=True, timeout=120)
    proc = _resolve_offline(tmp_path / "store", f"docker-archive://{archive}")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    expected = load_image(images.layout, "app")
    assert got["diff_ids"] == list(expected.config.diff_ids)
    # docker-archive layers are uncompressed: each digest is its diff_id, checked on import
    assert got["layers"] == got["diff_ids"]


def test_a_docker_archive_layer_that_does_not_match_its_diff_id_is_rejected(
        images: BaseImages, tmp_path: Path) -> None:
    import tarfile

    archive = tmp_path / "good.tar"
    subprocess.run(["skopeo", "copy", "--quiet", f"oci:{images.path}:app",
                    f"docker-archive:{archive}:x/y:1"], check=True, capture_output=True)
    bad = tmp_path / "bad.tar"
    corrupted = ""
    with tarfile.open(archive) as src, tarfile.open(bad, "w") as dst:
        manifest = json.load(src.extractfile("manifest.json"))  # type: ignore[arg-type]
        victim = manifest[0]["Layers"][-1]
        for member in src.getmembers():
            f = src.extractfile(member) if member.isfile() else None
            if member.name == victim and f is not None:
                data = bytearray(f.read())
                data[-2000] ^= 0xFF
                import io

                corrupted = _digest.of_bytes(bytes(data))
                dst.addfile(member, io.BytesIO(bytes(data)))
            else:
                dst.addfile(member, f)
    store = Store.open(tmp_path / "store")
    with pytest.raises(_digest.DigestMismatchError) as err:
        resolve_source(f"docker-archive://{bad}", store)
    assert "diff_id" in str(err.value) or "the config says" in str(err.value)
    assert corrupted and not store.layout.has_blob(corrupted)
    assert store.images() == {}


def test_a_plain_reference_pulls_into_the_store_and_a_digest_is_then_local(
        http_registry: RegistryServer, images: BaseImages, cli: Cli, tmp_path: Path) -> None:
    ref = f"{http_registry.host}/sources/app:1"
    cli.ok("push", f"oci:{images.path}:app", ref)
    store = Store.open(tmp_path / "store")
    image = resolve_source(f"docker-image://{ref}", store)
    assert image.digest == images.app.digest
    assert store.resolve_image(ref) is not None
    # with a digest whose blobs the store holds, no registry is asked (this one is closed)
    offline = f"docker-image://127.0.0.1:{free_port()}/sources/app@{images.app.digest}"
    assert resolve_source(offline, store).digest == images.app.digest


def test_build_context_forms(images: BaseImages, tmp_path: Path) -> None:
    ctx = parse_build_context(f"base=oci-layout://{images.path}:latest")
    assert ctx.name == "base" and ctx.is_image
    ctx = parse_build_context("Alpine=docker-image://alpine:3.19")
    assert ctx.name == "alpine" and ctx.source == "docker-image://alpine:3.19"
    ctx = parse_build_context(f"src={tmp_path}")
    assert not ctx.is_image and ctx.directory == tmp_path
    for bad in ("noequals", "x=git://example.com/repo", f"x={tmp_path}/missing",
                "x=docker-image://UPPER/case"):
        with pytest.raises(UsageError):
            parse_build_context(bad)
