"""Members below a symlink: ADD archives and image layers resolve such links inside the
root they unpack into (as chroot would), never outside it.

ADD (BuildKit solver/llbsolver/file/unpack_root.go): names lose a leading `/`; a link on
the way to a member is followed inside the destination, an absolute target from the
destination itself; a relative target that climbs out of it is refused ("points
outside"); a directory entry whose name is a symlink merges into the directory it names.
Layers (containerd archive/tar.go applyNaive with continuity fs.RootPath): the member's
parent is resolved inside the root with `..` stopping at the root; the member itself is
never followed (an existing entry is replaced).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from tests.build.conftest import Builder, give_to, write_context
from tests.support.paths import OCIBUILD


def _tar(path: Path, members: list[tuple[str, str, str]]) -> None:
    """members: (name, "file" | "dir" | "symlink", content or link target)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = 0o644, 1_000_000
            if kind == "file":
                info.size = len(value.encode())
                tf.addfile(info, io.BytesIO(value.encode()))
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, int(value or "755", 8)
                tf.addfile(info)
            else:
                info.type, info.linkname = tarfile.SYMTYPE, value
                tf.addfile(info)
    path.write_bytes(raw.getvalue())


@pytest.fixture
def victim_dir(builder: Builder) -> Path:
    """A directory of the builder user's, outside every build root."""
    path = builder.tmp / "victim"
    path.mkdir()
    (path / "victim.txt").write_text("the user's own file\n")
    give_to(path, builder.user)
    return path


def _outside_untouched(victim_dir: Path, host_name: str) -> None:
    assert sorted(os.listdir(victim_dir)) == ["victim.txt"]
    assert (victim_dir / "victim.txt").read_text() == "the user's own file\n"
    assert not Path("/etc", host_name).exists()


@pytest.mark.parametrize("snapshotter", ["overlay", "native"])
def test_add_writes_below_links_inside_the_destination(
        builder: Builder, victim_dir: Path, snapshotter: str) -> None:
    host_name = f"ocib-add-{os.getpid()}.txt"
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest\nADD a.tar /x/\n"
        "RUN test -L /x/lnk && test -L /x/dl && test -L /x/sub/up\n")}, builder.user)
    _tar(ctx / "a.tar", [
        ("real", "dir", ""), ("lnk", "symlink", "real"),
        ("lnk/f.txt", "file", "through a relative link\n"),
        ("sub", "dir", ""), ("sub/up", "symlink", ".."),
        ("sub/up/g.txt", "file", "up one, still inside\n"),
        ("cfg", "symlink", "/etc"), (f"cfg/{host_name}", "file", "absolute link\n"),
        ("v", "symlink", str(victim_dir)), ("v/victim.txt", "file", "not the user's\n"),
        ("/abs/h.txt", "file", "absolute name\n"),
        ("dl", "symlink", "real"), ("dl/", "dir", "700"),
    ])
    give_to(ctx, builder.user)
    dest = builder.tmp / "out"
    builder.build(ctx, "--snapshotter", snapshotter, "-o", f"type=local,dest={dest}")
    x = dest / "x"
    assert (x / "real" / "f.txt").read_text() == "through a relative link\n"
    assert (x / "g.txt").read_text() == "up one, still inside\n"
    assert (x / "etc" / host_name).read_text() == "absolute link\n"
    assert (x / str(victim_dir).lstrip("/") / "victim.txt").read_text() == "not the user's\n"
    assert (x / "abs" / "h.txt").read_text() == "absolute name\n"
    assert (x / "real").stat().st_mode & 0o777 == 0o700  # the `dl/` entry, through dl
    assert os.readlink(x / "lnk") == "real" and os.readlink(x / "cfg") == "/etc"
    _outside_untouched(victim_dir, host_name)


def test_add_refuses_a_relative_link_that_climbs_out(builder: Builder,
                                                     victim_dir: Path) -> None:
    ctx = write_context(builder.tmp / "ctx", {
        "Dockerfile": "FROM busybox:latest\nADD a.tar /x/\n"}, builder.user)
    _tar(ctx / "a.tar", [("esc", "symlink", "../../../.."),
                         ("esc/victim.txt", "file", "escaped\n")])
    give_to(ctx, builder.user)
    proc, _ = builder.build(ctx, check=False)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.rstrip().splitlines()[-1]
    assert last == ("ocibuild: error: [2/2] ADD a.tar /x/: a.tar: archive member "
                    "'esc/victim.txt': symlink 'esc' points outside the root"), proc.stderr
    _outside_untouched(victim_dir, "-")


@pytest.mark.parametrize("snapshotter", ["overlay", "native"])
def test_image_layer_members_below_links_stay_inside_the_root(
        builder: Builder, victim_dir: Path, snapshotter: str) -> None:
    host_name = f"ocib-layer-{os.getpid()}.txt"
    layer = builder.tmp / "layer.tar"
    _tar(layer, [
        ("real", "dir", ""), ("lnk", "symlink", "real"),
        ("lnk/f.txt", "file", "through a relative link\n"),
        ("sub", "dir", ""), ("sub/up", "symlink", ".."), ("sub/up/g.txt", "file", "g\n"),
        ("cfg", "symlink", "/etc"), (f"cfg/{host_name}", "file", "absolute link\n"),
        ("v", "symlink", str(victim_dir)), ("v/victim.txt", "file", "not the user's\n"),
        ("esc", "symlink", "../../../.."), ("esc/e.txt", "file", "clamped at the root\n"),
        ("/abs/a.txt", "file", "absolute name\n"),
    ])
    give_to(layer, builder.user)
    imported = builder.user.run([OCIBUILD, "--root", builder.root, "import", layer,
                                 "--tag", "crafted:latest"])
    assert imported.returncode == 0, imported.stderr
    victim_in_root = str(victim_dir).lstrip("/") + "/victim.txt"
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM crafted:latest AS base\n"
        "FROM busybox:latest\n"
        f"COPY --from=base /real/f.txt /g.txt /etc/{host_name} /e.txt /abs/a.txt "
        f"/{victim_in_root} /got/\n")}, builder.user)
    dest = builder.tmp / "out"
    builder.build(ctx, "--snapshotter", snapshotter, "-o", f"type=local,dest={dest}")
    got = {p.name: p.read_text() for p in (dest / "got").iterdir()}
    assert got == {"f.txt": "through a relative link\n", "g.txt": "g\n",
                   host_name: "absolute link\n", "e.txt": "clamped at the root\n",
                   "a.txt": "absolute name\n", "victim.txt": "not the user's\n"}
    base = builder.tmp / "base"
    builder.build(ctx, "--target", "base", "-o", f"type=local,dest={base}")
    assert os.readlink(base / "lnk") == "real" and (base / "real" / "f.txt").is_file()
    assert (base / victim_in_root).read_text() == "not the user's\n"
    _outside_untouched(victim_dir, host_name)


def _layout(path: Path, layers: list[bytes]) -> None:
    """A one-image OCI layout of these uncompressed layers (no shell in it)."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    diff_ids = [put(layer) for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d,
                    "size": len(layer)} for d, layer in zip(diff_ids, layers, strict=True)],
    }).encode()
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(manifest),
         "size": len(manifest)}]}))
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


@pytest.mark.parametrize("snapshotter", ["overlay", "native"])
def test_a_layer_below_a_lower_layers_link_goes_where_it_leads(
        builder: Builder, snapshotter: str) -> None:
    """containerd applies a layer onto its parent: `lib/b.txt` over a lower `lib ->
    usr/lib` lands in usr/lib, and /lib stays the link (the overlay snapshotter, which
    keeps layers apart, must give the same tree)."""
    lower, upper = builder.tmp / "lower.tar", builder.tmp / "upper.tar"
    _tar(lower, [("usr", "dir", ""), ("usr/lib", "dir", "750"),
                 ("usr/lib/a.txt", "file", "a\n"), ("lib", "symlink", "usr/lib")])
    _tar(upper, [("lib/b.txt", "file", "b\n"), ("lib/sub/c.txt", "file", "c\n")])
    _layout(builder.tmp / "base", [lower.read_bytes(), upper.read_bytes()])
    give_to(builder.tmp / "base", builder.user)
    ctx = write_context(builder.tmp / "ctx", {"marker": "m\n", "Dockerfile": (
        "FROM base AS b\nCOPY marker /marker\n"
        "FROM busybox:latest\nCOPY --from=b /usr/lib/ /got/\n")}, builder.user)
    context = f"base=oci-layout://{builder.tmp / 'base'}"
    dest = builder.tmp / "out"
    builder.build(ctx, "--snapshotter", snapshotter, "--build-context", context,
                  "-o", f"type=local,dest={dest}")
    got = dest / "got"
    assert sorted(str(p.relative_to(got)) for p in got.rglob("*")) == [
        "a.txt", "b.txt", "sub", "sub/c.txt"]
    stage = builder.tmp / "stage"
    builder.build(ctx, "--snapshotter", snapshotter, "--build-context", context,
                  "--target", "b", "-o", f"type=local,dest={stage}")
    assert os.readlink(stage / "lib") == "usr/lib"
    assert (stage / "usr" / "lib" / "b.txt").read_text() == "b\n"
    assert (stage / "usr" / "lib").stat().st_mode & 0o777 == 0o750
