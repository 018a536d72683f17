"""Two "machines" (two store roots, two clones of the context) and a registry between
them, behind a proxy that logs every request."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.build.conftest import (  # noqa: F401  (fixtures used by this package)
    Builder,
    _compiled_package,
    busybox_store_template,
    give_to,
    image_digest,
    step_states,
)
from tests.support.registry_server import Proxy, RegistryServer
from tests.support.users import User, remove_tree

SDE = {"SOURCE_DATE_EPOCH": "1700000000"}

DOCKERFILE = """\
FROM busybox:latest AS builder
ARG VERSION=1
COPY src/ /src/
RUN mkdir -p /out && cat /src/*.txt > /out/all.txt && echo "v$VERSION" > /out/version \\
    && head -c 300000 /dev/urandom > /out/blob.bin
RUN echo built > /out/marker

FROM busybox:latest
COPY app.conf /etc/app.conf
COPY --from=builder /out/ /app/
RUN cat /etc/app.conf /app/version > /final.txt
"""

FILES = {
    "Dockerfile": DOCKERFILE,
    "src/a.txt": "alpha\n",
    "src/b.txt": "beta\n",
    "app.conf": "setting=1\n",
}


@pytest.fixture(scope="session")
def registry() -> Iterator[RegistryServer]:
    server = RegistryServer.start("http")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[Proxy]:
    p = Proxy(registry.port)
    yield p
    p.close()


@dataclass
class Machine:
    """One CI machine: its own store root and its own clone of the sources."""

    builder: Builder
    context: Path

    def build(self, *args: str | Path, env: dict[str, str] | None = None,
              check: bool = True) -> tuple[str, dict[str, str]]:
        """(stderr, step states) of `ocibuild build` of this machine's context."""
        proc, _ = self.builder.build(self.context, *args, env={**SDE, **(env or {})},
                                     check=check)
        return proc.stderr, step_states(proc.stderr)

    def has_blob(self, digest: str) -> bool:
        return (self.builder.root / "content" / "blobs" / "sha256"
                / digest.removeprefix("sha256:")).exists()


@pytest.fixture
def machines(sub_user: User, sub_tmp: Path, busybox_store_template: Path,  # noqa: F811
             ) -> Iterator[tuple[Machine, Machine]]:
    """Machine A and machine B: different store roots, different context paths and
    mtimes, the same sources and the same busybox base."""
    made = []
    for name, mtime in (("a", 1_600_000_000), ("b", 1_650_000_000)):
        home = sub_tmp / f"machine-{name}"
        home.mkdir()
        give_to(home, sub_user)
        b = Builder(sub_user, home, home / "store")
        b.root = b.new_store(busybox_store_template, "store")
        ctx = home / "checkouts" / f"clone-{name}"
        write_files(ctx, FILES, sub_user, mtime)
        made.append(Machine(b, ctx))
    yield made[0], made[1]
    for m in made:
        remove_tree(m.builder.tmp)


def write_files(dest: Path, files: dict[str, str], user: User, mtime: int | None = None
                ) -> Path:
    for rel, content in files.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(0o644)
    if mtime is not None:
        for p in [dest, *dest.rglob("*")]:
            os.utime(p, (mtime, mtime))
    give_to(dest, user)
    return dest


def cache_config(layout_dir: Path, tag: str = "latest") -> tuple[dict, dict]:
    """(manifest, config) of a cache written to an OCI layout."""
    index = json.loads((layout_dir / "index.json").read_text())
    desc = next(m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
    blobs = layout_dir / "blobs" / "sha256"
    manifest = json.loads((blobs / desc["digest"].removeprefix("sha256:")).read_text())
    config = json.loads((blobs / manifest["config"]["digest"].removeprefix("sha256:"))
                        .read_text())
    return manifest, config


def layers_of_stage(manifest: dict, config: dict, stage: str) -> set[str]:
    """Layer digests of the cache's records of one stage ("[builder ..." descriptions)."""
    return {manifest["layers"][r["layer"]]["digest"] for r in config["records"]
            if r["layer"] is not None and r["description"].startswith(f"[{stage} ")}


def copy_tree(src: Path, dest: Path, user: User) -> None:
    shutil.copytree(src, dest, symlinks=True)
    give_to(dest, user)


def registry_cache(server: RegistryServer, repository: str, tag: str) -> tuple[dict, dict]:
    """(manifest, config) of a cache manifest in the registry, read over plain HTTP."""
    import urllib.request

    base = f"http://{server.host}/v2/{repository}"
    req = urllib.request.Request(f"{base}/manifests/{tag}", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        manifest = json.loads(resp.read())
    with urllib.request.urlopen(f"{base}/blobs/{manifest['config']['digest']}",
                                timeout=30) as resp:
        config = json.loads(resp.read())
    return manifest, config
