"""Change-set layers: whiteouts and opaque directories, written and applied."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from ocibuild.oci.layer import (
    Change,
    apply_layer,
    open_uncompressed,
    write_layer_from_changes,
    write_layer_from_dir,
    write_layer_from_overlay_upper,
)
from tests.support.layer_trees import describe, write_files

SDE = 1_650_000_000
LOWER = {
    "a/x": b"deleted by layer 2",
    "a/y": b"kept",
    "b/c/d": b"hidden by the opaque b",
    "b/e": b"hidden too",
    "keep": b"untouched",
}
EXPECTED = {"a", "a/y", "b", "b/new", "keep"}


def _layer1(tmp_path: Path) -> bytes:
    src = tmp_path / "lower-src"
    write_files(src, LOWER)
    out = io.BytesIO()
    write_layer_from_dir(src, out, source_date_epoch=SDE)
    return out.getvalue()


def _names(blob: bytes) -> list[str]:
    """Entry names as tarfile reads them (it drops the "/" that ends directory names)."""
    with tarfile.open(fileobj=open_uncompressed(io.BytesIO(blob)), mode="r|") as tar:
        return [m.name for m in tar]


def test_whiteout_and_opaque_over_a_lower_layer(tmp_path: Path) -> None:
    upper = tmp_path / "change"
    write_files(upper, {"b/new": b"new in layer 2"})
    (upper / "a").mkdir()
    changes = [Change("a/x", "delete"), Change("b", "opaque"), Change("b/new", "add")]
    out = io.BytesIO()
    write_layer_from_changes(upper, changes, out, compression="zstd", source_date_epoch=SDE)
    layer2 = out.getvalue()
    assert _names(layer2) == ["a", "a/.wh.x", "b", "b/.wh..wh..opq", "b/new"]

    root = tmp_path / "root"
    apply_layer(io.BytesIO(_layer1(tmp_path)), root)
    apply_layer(io.BytesIO(layer2), root)
    tree = describe(root)
    assert set(tree) == EXPECTED
    assert tree["b/new"][3] == b"new in layer 2"
    assert tree["a/y"][3] == b"kept"


def test_opaque_marker_after_new_entries_keeps_them(tmp_path: Path) -> None:
    # Byte order puts "b/-early" before "b/.wh..wh..opq": it belongs to this layer and stays.
    upper = tmp_path / "change"
    write_files(upper, {"b/-early": b"mine", "b/z": b"mine too"})
    changes = [Change("b", "opaque"), Change("b/-early", "add"), Change("b/z", "add")]
    out = io.BytesIO()
    write_layer_from_changes(upper, changes, out)
    names = _names(out.getvalue())
    assert names.index("b/-early") < names.index("b/.wh..wh..opq")
    root = tmp_path / "root"
    apply_layer(io.BytesIO(_layer1(tmp_path)), root)
    apply_layer(io.BytesIO(out.getvalue()), root)
    assert {k for k in describe(root) if k.startswith("b/")} == {"b/-early", "b/z"}


def test_delete_then_add_of_the_same_path_is_a_replacement(tmp_path: Path) -> None:
    upper = tmp_path / "change"
    write_files(upper, {"a/x": b"replaced"})
    out = io.BytesIO()
    write_layer_from_changes(upper, [Change("a/x", "delete"), Change("a/x", "add")], out)
    assert _names(out.getvalue()) == ["a", "a/x"]


@pytest.mark.parametrize("userxattr", [False, True])
def test_overlay_upper_gives_the_same_layer_as_the_change_set(tmp_path: Path,
                                                             userxattr: bool) -> None:
    lower = tmp_path / "lower"
    apply_layer(io.BytesIO(_layer1(tmp_path)), lower)
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for d in (upper, work, merged):
        d.mkdir()
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    if userxattr:
        options += ",userxattr"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)],
                   check=True)
    try:
        os.unlink(merged / "a/x")
        shutil.rmtree(merged / "b")
        (merged / "b").mkdir()
        (merged / "b/new").write_bytes(b"new in layer 2")
        snapshot = tmp_path / "snapshot"
        shutil.copytree(merged, snapshot, symlinks=True)
    finally:
        subprocess.run(["umount", str(merged)], check=True)

    from_upper = io.BytesIO()
    info = write_layer_from_overlay_upper(upper, from_upper, source_date_epoch=SDE)
    with tarfile.open(fileobj=io.BytesIO(from_upper.getvalue())) as tar:
        assert [m.name for m in tar] == ["a", "a/.wh.x", "b", "b/.wh..wh..opq", "b/new"]
        assert not any("overlay" in k for m in tar for k in m.pax_headers)

    changes = [Change("a/x", "delete"), Change("b", "opaque"), Change("b/new", "add")]
    from_changes = io.BytesIO()
    native = write_layer_from_changes(snapshot, changes, from_changes, source_date_epoch=SDE)
    assert native.digest == info.digest

    root = tmp_path / "root"
    apply_layer(io.BytesIO(_layer1(tmp_path)), root)
    apply_layer(io.BytesIO(from_upper.getvalue()), root)
    assert set(describe(root)) == EXPECTED
    assert describe(root) == describe(snapshot)
