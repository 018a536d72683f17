"""Signature tests: one registry, two key pairs and one builder for the whole package,
and the sigstore-enabled skopeo that scripts/skopeo_sigstore.sh installs (Debian 12's
own skopeo and podman refuse every sigstore policy and signature: a Debian patch)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.build.conftest import (  # noqa: F401  (fixtures used by this package)
    Builder,
    _compiled_package,
    busybox_store_template,
    give_to,
)
from tests.support.paths import OCIBUILD, VENV_BIN
from tests.support.registry_server import RegistryServer
from tests.support.users import User, remove_tree

SKOPEO = VENV_BIN / "skopeo-sigstore"
PASSPHRASE = "correct horse battery"
KEY_ENV = {"OCIBUILD_KEY_PASSWORD": PASSPHRASE}


@pytest.fixture(scope="package")
def registry() -> Iterator[RegistryServer]:
    server = RegistryServer.start("http")
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Keys:
    """Two key pairs made by `ocibuild key generate`: ours and another signer's."""

    dir: Path

    def private(self, name: str = "ours") -> Path:
        return self.dir / f"{name}.key"

    def public(self, name: str = "ours") -> Path:
        return self.dir / f"{name}.pub"


@pytest.fixture(scope="package")
def package_tmp(sub_user: User) -> Iterator[Path]:
    path = sub_user.make_tempdir("ocib-signing-")
    yield path
    remove_tree(path)


@pytest.fixture(scope="package")
def keys(package_tmp: Path, sub_user: User) -> Keys:
    found = Keys(package_tmp / "keys")
    found.dir.mkdir()
    give_to(found.dir, sub_user)
    for name in ("ours", "theirs"):
        proc = sub_user.run([OCIBUILD, "key", "generate", "--output", found.dir / name],
                            env=KEY_ENV, cwd=package_tmp)
        assert proc.returncode == 0, proc.stderr
    return found


@pytest.fixture(scope="package")
def package_builder(sub_user: User, package_tmp: Path, busybox_store_template: Path,  # noqa: F811
                    ) -> Builder:
    b = Builder(sub_user, package_tmp, package_tmp / "store")
    b.root = b.new_store(busybox_store_template, "store")
    return b


@dataclass(frozen=True)
class Skopeo:
    """Debian 13's skopeo, told to use sigstore attachments on the test registry."""

    work: Path
    host: str

    def __call__(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SKOPEO, "--registries.d", self.work / "registries.d",
                               *map(str, args)], capture_output=True, text=True, timeout=60)

    def policy(self, public_key: Path | None) -> Path:
        """A policy.json requiring a signature made with `public_key` for the test
        registry (None: accept anything)."""
        rule = ({"type": "sigstoreSigned", "keyPath": str(public_key),
                 "signedIdentity": {"type": "matchRepoDigestOrExact"}}
                if public_key is not None else {"type": "insecureAcceptAnything"})
        doc = {"default": [{"type": "reject"}],
               "transports": {"docker": {self.host: [rule]},
                              "dir": {"": [{"type": "insecureAcceptAnything"}]}}}
        path = self.work / f"policy-{public_key.stem if public_key else 'any'}.json"
        path.write_text(json.dumps(doc))
        return path

    def pull(self, ref: str, public_key: Path) -> subprocess.CompletedProcess[str]:
        """Copy `ref` out of the registry under a policy requiring `public_key`."""
        dest = self.work / "pulled"
        subprocess.run(["rm", "-rf", dest], check=True)
        return self("--policy", self.policy(public_key), "copy", "--quiet",
                    "--src-tls-verify=false", "--remove-signatures", f"docker://{ref}",
                    f"dir:{dest}")


@pytest.fixture(scope="package")
def skopeo(package_tmp: Path, registry: RegistryServer) -> Skopeo:
    if not SKOPEO.exists():
        pytest.fail(f"{SKOPEO} is missing: run scripts/skopeo_sigstore.sh (bootstrap.sh "
                    "test runs it)")
    work = package_tmp / "skopeo"
    (work / "registries.d").mkdir(parents=True)
    (work / "registries.d" / "test.yaml").write_text(
        f"docker:\n  {registry.host}:\n    use-sigstore-attachments: true\n")
    return Skopeo(work, registry.host)
