"""The same tree gives the same layer bytes, whatever the mtimes on disk."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from ocibuild.oci.layer import LayerInfo, write_layer_from_dir
from tests.support.layer_trees import write_files

SDE = 1_700_000_000


def _make_tree(root: Path, mtime: int) -> None:
    write_files(root, {
        "app/main.py": b"print('hello')\n" * 200,
        "app/data.bin": bytes(range(256)) * 4096,
        "app/link": "main.py",
        "etc/conf": b"key=value\n",
        "z/y/x/w": b"deep",
    })
    os.link(root / "app/main.py", root / "app/main-hardlink.py")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(Path(dirpath, name), (mtime, mtime), follow_symlinks=False)


def _layer(root: Path, compression: str, sde: int | None) -> tuple[LayerInfo, bytes]:
    out = io.BytesIO()
    info = write_layer_from_dir(root, out, compression=compression, source_date_epoch=sde)
    return info, out.getvalue()


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_same_tree_twice_gives_identical_layers(tmp_path: Path, compression: str) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    _make_tree(first, SDE + 1000)
    _make_tree(second, SDE + 987654)
    info1, blob1 = _layer(first, compression, SDE)
    info2, blob2 = _layer(second, compression, SDE)
    assert blob1 == blob2
    assert (info1.digest, info1.diff_id, info1.size) == (info2.digest, info2.diff_id, info2.size)
    assert info1.compression == compression

    # Without SOURCE_DATE_EPOCH the disk mtimes show: the equality above is not a given.
    assert _layer(first, compression, None)[0].digest != _layer(second, compression, None)[0].digest


def test_gzip_and_zstd_layers_of_one_tree_share_the_diff_id(tmp_path: Path) -> None:
    _make_tree(tmp_path / "t", SDE)
    infos = [_layer(tmp_path / "t", c, SDE)[0] for c in ("gzip", "zstd", "none")]
    assert len({i.diff_id for i in infos}) == 1
    assert len({i.digest for i in infos}) == 3
    assert infos[2].digest == infos[2].diff_id


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_a_layer_written_into_the_store_has_the_digest_of_its_blob(
        tmp_path: Path, compression: str) -> None:
    """Into a blob writer the layer's digest comes from the writer's own hash (computed
    once): it must still be the digest of the bytes, and the same as into memory."""
    from ocibuild.oci.digest import of_stream
    from ocibuild.oci.layout import ImageLayout

    _make_tree(tmp_path / "t", SDE)
    in_memory, _ = _layer(tmp_path / "t", compression, SDE)
    layout = ImageLayout.init(tmp_path / "layout")
    with layout.blob_writer() as w:
        info = write_layer_from_dir(tmp_path / "t", w, compression=compression,
                                    source_date_epoch=SDE)
        desc = w.commit()
    assert (info.digest, info.size) == (desc.digest, desc.size)
    assert (info.digest, info.diff_id, info.size) == (in_memory.digest, in_memory.diff_id,
                                                      in_memory.size)
    with open(layout.blob_path(info.digest), "rb") as f:
        assert of_stream(f) == (info.digest, info.size)


def test_a_blob_writer_that_already_holds_bytes_is_not_trusted_for_the_digest(
        tmp_path: Path) -> None:
    from ocibuild.oci.layout import ImageLayout

    _make_tree(tmp_path / "t", SDE)
    in_memory, _ = _layer(tmp_path / "t", "gzip", SDE)
    layout = ImageLayout.init(tmp_path / "layout")
    with layout.blob_writer() as w:
        w.write(b"x")
        info = write_layer_from_dir(tmp_path / "t", w, compression="gzip",
                                    source_date_epoch=SDE)
    assert info.digest == in_memory.digest  # of the layer's own bytes, not the file's
