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
