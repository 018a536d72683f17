"""Converting a layer blob to another compression or level: standard streams of the
same diffID, the bytes a build in that compression makes, remembered once made."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from ocibuild.oci.convert import convert_layer
from ocibuild.oci.layer import write_layer_from_dir
from ocibuild.oci.layerinfo import LayerInfo
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.mediatypes import OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD
from tests.support.layer_trees import write_files


@pytest.fixture
def layout_with_layer(tmp_path: Path) -> tuple[ImageLayout, LayerInfo]:
    src = tmp_path / "src"
    # several 1 MiB blocks, so the joins of the block-wise encoders are exercised
    write_files(src, {"big": bytes(range(256)) * 12000, "text": b"hello layer\n" * 200000})
    layout = ImageLayout.init(tmp_path / "layout")
    with layout.blob_writer() as w:
        info = write_layer_from_dir(src, w, compression="gzip")
        w.commit()
    return layout, info


@pytest.mark.parametrize(("compression", "level", "tool", "media_type"), [
    ("gzip", 9, "gzip", OCI_LAYER_GZIP), ("gzip", 0, "gzip", OCI_LAYER_GZIP),
    ("zstd", None, "zstd", OCI_LAYER_ZSTD), ("zstd", 19, "zstd", OCI_LAYER_ZSTD),
])
def test_converted_layers_are_standard_streams_of_the_same_diff_id(
        layout_with_layer: tuple[ImageLayout, LayerInfo], tmp_path: Path, compression: str,
        level: int | None, tool: str, media_type: str) -> None:
    layout, info = layout_with_layer
    source = info.descriptor()
    new = convert_layer(layout, source, info.diff_id, compression, level)
    assert new.media_type == media_type and new.digest != source.digest
    plain = subprocess.run([tool, "-dc", str(layout.blob_path(new.digest))], check=True,
                           capture_output=True).stdout
    assert "sha256:" + hashlib.sha256(plain).hexdigest() == info.diff_id


def test_conversion_round_trip_gives_the_build_bytes_and_is_remembered(
        layout_with_layer: tuple[ImageLayout, LayerInfo], tmp_path: Path) -> None:
    layout, info = layout_with_layer
    source = info.descriptor()
    diff_id = info.diff_id
    memo = tmp_path / "conversions"
    zstd = convert_layer(layout, source, diff_id, "zstd", None, memo)
    back = convert_layer(layout, zstd, diff_id, "gzip", None, memo)
    assert back.digest == source.digest  # what a gzip build writes
    plain = convert_layer(layout, source, diff_id, "none", None, memo)
    assert plain.media_type == OCI_LAYER and plain.digest == diff_id
    # remembered: the converted blob is found, not made again
    made = layout.blob_path(zstd.digest).stat().st_mtime_ns
    assert convert_layer(layout, source, diff_id, "zstd", None, memo) == zstd
    assert layout.blob_path(zstd.digest).stat().st_mtime_ns == made
    # a remembered blob that is gone (pruned) is made again
    layout.blob_path(zstd.digest).unlink()
    assert convert_layer(layout, source, diff_id, "zstd", None, memo) == zstd
    assert layout.has_blob(zstd.digest)
