"""The image-management tests use the registry tests' registry, proxy, images and CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.registry.conftest import (  # noqa: F401  (fixtures)
    BaseImages,
    Cli,
    cli,
    http_registry,
    images,
    proxy,
)


def skopeo(*args: str) -> str:
    done = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"skopeo {' '.join(args)}:\n{done.stderr}"
    return done.stdout


def readable(ref: str, tmp: Path) -> str:
    """`ref` as skopeo inspects it: a registry image is first copied by skopeo into an
    OCI layout (every blob checked against its digest, digests preserved), since this
    skopeo's `inspect` refuses OCI manifests from a registry."""
    if not ref.startswith("docker://"):
        return ref
    dest = tmp / f"skopeo-{hashlib.sha256(ref.encode()).hexdigest()[:12]}"
    skopeo("copy", "--quiet", "--preserve-digests", "--src-tls-verify=false", ref,
           f"oci:{dest}:copied")
    return f"oci:{dest}:copied"


def skopeo_raw(ref: str, *flags: str) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", *flags, ref], capture_output=True,
                          timeout=120, check=True).stdout


def skopeo_manifest(ref: str, tmp: Path) -> dict:
    """The manifest skopeo reads at `ref`."""
    return json.loads(skopeo_raw(readable(ref, tmp)))


def skopeo_digest(ref: str, tmp: Path) -> str:
    """The digest of the manifest skopeo reads at `ref`."""
    return "sha256:" + hashlib.sha256(skopeo_raw(readable(ref, tmp))).hexdigest()


def skopeo_config_digest(ref: str, tmp: Path) -> str:
    """The config digest of `ref`'s manifest, after checking that the config skopeo
    reads has that digest."""
    ref = readable(ref, tmp)
    manifest = json.loads(skopeo_raw(ref))
    config = skopeo_raw(ref, "--config")
    assert "sha256:" + hashlib.sha256(config).hexdigest() == manifest["config"]["digest"]
    return manifest["config"]["digest"]


@pytest.fixture
def stocked(cli: Cli, images: BaseImages) -> Cli:  # noqa: F811
    """A CLI whose store holds the derived image as `app:1`."""
    cli.ok("copy", f"oci:{images.path}:app", "store:app:1")
    return cli


def store_blobs(runner: Cli) -> set[str]:
    root = Path(runner.env()["OCIBUILD_ROOT"]) / "content" / "blobs" / "sha256"
    return {p.name for p in root.iterdir()} if root.is_dir() else set()
