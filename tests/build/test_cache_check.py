"""`ocibuild cache check` on a store a build used: clean, then damaged, repaired, used."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.build.conftest import Builder, step_states, write_context
from tests.support.paths import OCIBUILD
from tests.support.users import remove_tree

DOCKERFILE = "FROM busybox:latest\nRUN echo one > /one\nRUN echo two > /two\n"


def _check(builder: Builder, *args: str) -> subprocess.CompletedProcess[str]:
    return builder.user.run([OCIBUILD, "--root", builder.root, "cache", "check", *args])


def _last_layer(root: Path, name: str) -> str:
    index = json.loads((root / "content" / "index.json").read_text())
    digest = next(m["digest"] for m in index["manifests"]
                  if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == name)
    manifest = json.loads((root / "content" / "blobs" / "sha256" / digest[7:]).read_text())
    return str(manifest["layers"][-1]["digest"])


def test_a_store_after_builds_checks_clean(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": DOCKERFILE}, builder.user)
    builder.build(ctx, "-t", "out:1")
    builder.build(ctx, "-t", "out:2")
    out = _check(builder)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[-1].startswith("store is clean ("), out.stdout


def test_repair_after_damage_leaves_a_clean_store_that_builds(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": DOCKERFILE}, builder.user)
    builder.build(ctx, "-t", "out:1")
    # a build for the store alone writes no layer blobs (cache.lazy_blobs): `save`
    # makes them, as any output does
    saved = builder.user.run([OCIBUILD, "--root", builder.root, "save", "out:1", "-o",
                              builder.tmp / "out.tar"])
    assert saved.returncode == 0, saved.stderr
    layer = _last_layer(builder.root, "docker.io/library/out:1")
    blob = builder.root / "content" / "blobs" / "sha256" / layer[7:]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    snapshot = sorted(p for sub in ("layers", "chains")
                      for p in (builder.root / "snapshots" / sub).glob("[0-9a-f]*"))[0]
    remove_tree(snapshot)
    partial = builder.root / "content" / ".tmp-planted"
    partial.write_bytes(b"x" * 100_000)

    out = _check(builder)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith(f"corrupt blob: {layer}: its content has digest ")
               for line in lines), out.stdout
    assert any(line.startswith(f"missing directory: {snapshot}: ") for line in lines), out.stdout
    assert f"leftover: {partial}: a temporary file of a process that is gone" in lines
    assert any(line.startswith("incomplete image: docker.io/library/out:1: ")
               for line in lines), out.stdout
    assert "Traceback" not in out.stderr

    repaired = _check(builder, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    again = _check(builder)
    assert again.returncode == 0, again.stdout + again.stderr

    proc, _ = builder.build(ctx, "-t", "out:1")
    states = step_states(proc.stderr)
    assert states["[2/3] RUN echo one > /one"] == "CACHED", proc.stderr
    assert states["[3/3] RUN echo two > /two"] == "DONE", proc.stderr  # its layer was lost
    images = builder.user.run([OCIBUILD, "--root", builder.root, "images"])
    assert "out " in images.stdout and "1 " in images.stdout, images.stdout
    final = _check(builder)
    assert final.returncode == 0, final.stdout
