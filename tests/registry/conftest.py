"""Registries for the registry tests: Debian's docker-registry on 127.0.0.1, one per
set-up and test session (plain http, TLS, htpasswd, bearer token), stopped by PID."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layout import ImageLayout
from tests.registry.images import derive, make_base
from tests.support.paths import OCIBUILD
from tests.support.registry_server import PASSWORD, USER, Proxy, RegistryServer


def _server(mode: str) -> Iterator[RegistryServer]:
    server = RegistryServer.start(mode)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def http_registry() -> Iterator[RegistryServer]:
    yield from _server("http")


@pytest.fixture(scope="session")
def tls_registry() -> Iterator[RegistryServer]:
    yield from _server("tls")


@pytest.fixture(scope="session")
def htpasswd_registry() -> Iterator[RegistryServer]:
    yield from _server("htpasswd")


@pytest.fixture(scope="session")
def token_registry() -> Iterator[RegistryServer]:
    yield from _server("token")


@pytest.fixture
def proxy(http_registry: RegistryServer) -> Iterator[Proxy]:
    """A counting, fault-injecting proxy in front of the http registry."""
    p = Proxy(http_registry.port)
    yield p
    p.close()


@dataclass(frozen=True)
class BaseImages:
    layout: ImageLayout
    base: Descriptor  # the busybox base, tag "latest"
    app: Descriptor  # derived: base + one layer, tag "app"

    @property
    def path(self) -> Path:
        return self.layout.path


@pytest.fixture(scope="session")
def images(busybox_rootfs: Path) -> Iterator[BaseImages]:
    tmp = Path(tempfile.mkdtemp(prefix="ocib-reg-images-"))
    layout, base = make_base(busybox_rootfs, tmp / "layout")
    app = derive(layout, "latest", "app", {"app/hello.txt": b"hello from a derived image\n"})
    yield BaseImages(layout, base, app)
    shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Cli:
    """Runs `ocibuild` as a subprocess with its own HOME, store root and auth file."""

    home: Path

    @property
    def authfile(self) -> Path:
        return self.home / "auth.json"

    def env(self) -> dict[str, str]:
        return {"HOME": str(self.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "OCIBUILD_ROOT": str(self.home / "root"), "REGISTRY_AUTH_FILE": str(self.authfile),
                "LANG": "C.UTF-8"}

    def __call__(self, *args: str, input: str | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(OCIBUILD), *args], capture_output=True, text=True,
                              env=self.env(), input=input, timeout=timeout)

    def ok(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = self(*args, input=input)
        assert proc.returncode == 0, f"ocibuild {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
        return proc

    def login_file(self, host: str, user: str = USER, password: str = PASSWORD) -> None:
        import base64

        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.authfile.write_text(json.dumps({"auths": {host: {"auth": token}}}))


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    return Cli(home)


def registry_flags(server: RegistryServer) -> list[str]:
    """What ocibuild needs to trust or reach this registry."""
    if server.mode == "tls":
        assert server.certs is not None
        return ["--registry-ca", str(server.certs.ca_cert)]
    return []


def skopeo_src_flags(server: RegistryServer, tmp: Path) -> list[str]:
    """What skopeo needs to read from this registry."""
    if server.mode == "tls":
        assert server.certs is not None
        certdir = tmp / "skopeo-certs"
        certdir.mkdir(exist_ok=True)
        shutil.copy(server.certs.ca_cert, certdir / "ca.crt")
        return ["--src-cert-dir", str(certdir)]
    flags = ["--src-tls-verify=false"]
    if server.mode in ("htpasswd", "token"):
        flags += ["--src-creds", f"{USER}:{PASSWORD}"]
    return flags


def skopeo_pull_digest(server: RegistryServer, ref: str, tmp: Path) -> str:
    """Copy `ref` out of the registry with skopeo (digests preserved); the manifest
    digest skopeo wrote."""
    dest = tmp / f"skopeo-{abs(hash(ref))}"
    subprocess.run(["skopeo", "copy", "--quiet", "--preserve-digests",
                    *skopeo_src_flags(server, tmp), f"docker://{ref}", f"oci:{dest}:pulled"],
                   check=True, capture_output=True, text=True, timeout=120)
    index = json.loads((dest / "index.json").read_text())
    return index["manifests"][0]["digest"]
