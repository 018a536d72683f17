"""A build whose only output is the store writes no layer blobs for its steps: each
step's upper directory becomes its layer's directory, and the store makes a layer's
blob from it when something first reads it (cache.lazy_blobs). Whatever reads the image
later (an export, `save`, `cache prune`) must get exactly the blobs a build that wrote
them at once gives, with the digests the image names."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

from tests.build.conftest import Builder, image_digest, step_states, write_context
from tests.support.paths import OCIBUILD

DOCKERFILE = ("FROM busybox:latest\nCOPY data /data\n"
              "RUN echo made > /data/run.txt && rm /data/gone.txt\n")
SDE = ("--build-arg", "SOURCE_DATE_EPOCH=1700000000")  # the RUN layer's mtimes clamped


def _context(builder: Builder) -> Path:
    return write_context(builder.tmp / "ctx", {
        "Dockerfile": DOCKERFILE, "data/a.txt": "a\n", "data/gone.txt": "gone\n",
        "data/sub/b.txt": "b\n", "data/big.bin": os.urandom(3 << 20),
    }, builder.user)


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _manifest(layout: Path, digest: str) -> dict[str, object]:
    return json.loads(_blob(layout, digest).read_text())


def _own_layers(layout: Path, digest: str) -> list[str]:
    """The blob digests of the image's last two layers (the COPY's and the RUN's)."""
    layers = _manifest(layout, digest)["layers"]
    assert isinstance(layers, list)
    return [layer["digest"] for layer in layers[-2:]]


def _oci_layers(layout: Path) -> list[str]:
    index = json.loads((layout / "index.json").read_text())
    return _own_layers(layout, index["manifests"][0]["digest"])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def _ocibuild(builder: Builder, *args: str | Path) -> subprocess.CompletedProcess[str]:
    proc = builder.user.run([OCIBUILD, "--root", builder.root, *args], cwd=builder.tmp)
    assert proc.returncode == 0, proc.stderr
    return proc


def _store_only_build(builder: Builder, ctx: Path) -> list[str]:
    proc, _ = builder.build(ctx, "-t", "lazy", *SDE)
    content = builder.root / "content"
    own = _own_layers(content, image_digest(proc.stderr))
    for digest in own:
        assert not _blob(content, digest).exists(), f"{digest}: written at once"
        hexpart = digest.removeprefix("sha256:")
        assert (builder.root / "snapshots" / "lazy" / f"{hexpart}.json").is_file()
    return own


def test_an_export_gets_the_blobs_a_build_that_wrote_them_gives(
        builder: Builder, busybox_store_template: Path) -> None:
    ctx = _context(builder)
    own = _store_only_build(builder, ctx)
    assert "store is clean" in _ocibuild(builder, "cache", "check").stdout

    eager_store = builder.new_store(busybox_store_template, "eager-store")
    builder.build(ctx, "-o", f"type=oci,dest={builder.tmp / 'eager'},tar=false", *SDE,
                  store=eager_store)
    assert _oci_layers(builder.tmp / "eager") == own

    proc, _ = builder.build(ctx, "-o", f"type=oci,dest={builder.tmp / 'later'},tar=false",
                            *SDE)
    assert set(step_states(proc.stderr).values()) == {"CACHED"}
    assert _oci_layers(builder.tmp / "later") == own
    for digest in own:
        assert _sha256(_blob(builder.tmp / "later", digest)) == digest
        assert _sha256(_blob(builder.root / "content", digest)) == digest
    assert list((builder.root / "snapshots" / "lazy").iterdir()) == []
    assert "store is clean" in _ocibuild(builder, "cache", "check").stdout


def test_prune_writes_the_blobs_of_a_named_image_before_its_layer_directories_go(
        builder: Builder) -> None:
    own = _store_only_build(builder, _context(builder))
    _ocibuild(builder, "cache", "prune", "--all")
    assert not [p for p in (builder.root / "snapshots" / "layers").iterdir()]
    for digest in own:
        assert _sha256(_blob(builder.root / "content", digest)) == digest
    _ocibuild(builder, "save", "lazy", "-o", builder.tmp / "lazy.tar")
    proc = subprocess.run(["skopeo", "inspect", f"docker-archive:{builder.tmp / 'lazy.tar'}"],
                          capture_output=True, text=True, check=True)
    assert len(json.loads(proc.stdout)["Layers"]) == 3
    assert "store is clean" in _ocibuild(builder, "cache", "check").stdout


def test_a_copy_run_again_links_from_the_layer_directory_the_last_copy_became(
        builder: Builder) -> None:
    ctx = _context(builder)
    time.sleep(1.2)  # past the clock slack a copy allows for the files' ctime (copy_links)
    _store_only_build(builder, ctx)
    layers = builder.root / "snapshots" / "layers"
    first = {p.name: p.stat().st_ino for d in layers.iterdir()
             for p in (d / "data").glob("*.*") if (d / "data" / "big.bin").exists()}
    assert set(first) == {"a.txt", "big.bin", "gone.txt"}
    proc, _ = builder.build(ctx, "--no-cache", "-t", "again", *SDE)
    # the same layers again: the store makes their blobs from the directories it kept
    content = builder.root / "content"
    for digest in _own_layers(content, image_digest(proc.stderr)):
        assert not _blob(content, digest).exists()
    copies = [p for p in (builder.root / "snapshots" / "trash").glob("*/upper/data")
              if (p / "big.bin").exists()]
    assert len(copies) == 1
    assert {p.name: p.stat().st_ino for p in copies[0].glob("*.*")} == first
    _ocibuild(builder, "save", "again", "-o", builder.tmp / "again.tar")
    for digest in _own_layers(content, image_digest(proc.stderr)):
        assert _sha256(_blob(content, digest)) == digest


MARK = "31.7"  # the sleep of the step the builder is killed in


def _sleeping() -> bool:
    for entry in os.scandir("/proc"):
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and Path(entry.path, "cmdline").read_bytes().split(
                    b"\0")[:2] == [b"sleep", MARK.encode()]:
                return True
    return False


def test_a_killed_build_leaves_the_layers_it_recorded_whole(builder: Builder) -> None:
    """SIGKILL leaves no time to keep the finished COPY's upper as its layer's
    directory: the next build does it when it clears the dead build's step directories,
    so the COPY's record still stands and its blob can still be made."""
    ctx = _context(builder)
    (ctx / "Dockerfile").write_text(f"FROM busybox:latest\nCOPY data /data\nRUN sleep {MARK}\n")
    proc = builder.user.popen([OCIBUILD, "--root", builder.root, "build", "--progress",
                               "plain", ctx], cwd=builder.tmp, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    lazy = builder.root / "snapshots" / "lazy"
    deadline = time.monotonic() + 60
    while not (_sleeping() and lazy.is_dir() and list(lazy.iterdir())):  # COPY recorded
        assert proc.poll() is None and time.monotonic() < deadline, "the RUN never started"
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=30)

    (ctx / "Dockerfile").write_text("FROM busybox:latest\nCOPY data /data\nRUN true\n")
    done, _ = builder.build(ctx, "-t", "after")
    assert step_states(done.stderr)["[2/3] COPY data /data"] == "CACHED", done.stderr
    _ocibuild(builder, "save", "after", "-o", builder.tmp / "after.tar")
    out = subprocess.run(["skopeo", "inspect", f"docker-archive:{builder.tmp / 'after.tar'}"],
                         capture_output=True, text=True, check=True)
    assert len(json.loads(out.stdout)["Layers"]) == 2  # busybox's and the COPY's
    assert "store is clean" in _ocibuild(builder, "cache", "check").stdout
