"""The layer of an overlay upper directory is written as the directory is walked: the
same bytes as the layer of its whole change set, without holding every path."""

from __future__ import annotations

import io
import os
import tracemalloc
from pathlib import Path

from ocibuild.oci.layer import write_layer_from_changes, write_layer_from_overlay_upper
from ocibuild.oci.overlaydiff import changes_from_upper, layer_entries


def _deleted(path: Path) -> None:
    os.mknod(path, 0o20000 | 0o644, os.makedev(0, 0))  # overlayfs' whiteout


def test_an_upper_directory_streams_to_the_same_layer_as_its_change_set(
        tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    for d in ("a/b", "a.d", "opaque/sub"):
        (upper / d).mkdir(parents=True)
    # "a.txt" sorts between "a" and "a/b"; a real ".wh.gone" sits beside deleted "gone"
    for f in ("a.txt", "a/b.txt", "a/b/f", "a.d/g", ".wh.gone", "opaque/sub/h"):
        (upper / f).write_text(f)
    _deleted(upper / "gone")
    _deleted(upper / "a" / "x")
    os.symlink("a.txt", upper / "link")
    os.link(upper / "a.txt", upper / "a" / "hard")
    os.setxattr(upper / "opaque", "trusted.overlay.opaque", b"y")
    streamed, planned = io.BytesIO(), io.BytesIO()
    info = write_layer_from_overlay_upper(upper, streamed, source_date_epoch=1)
    changes = changes_from_upper(os.fsencode(upper))
    assert write_layer_from_changes(upper, changes, planned, source_date_epoch=1) == info
    assert streamed.getvalue() == planned.getvalue()


def test_walking_an_upper_directory_holds_no_entry_per_file(tmp_path: Path) -> None:
    def peak(count: int) -> int:
        upper = tmp_path / f"u{count}"
        for i in range(count):
            directory = upper / f"d{i // 100:03d}"
            if i % 100 == 0:
                directory.mkdir(parents=True)
            (directory / f"f{i:05d}").write_bytes(b"")
        tracemalloc.start()
        try:
            assert sum(1 for _ in layer_entries(os.fsencode(upper))) == count + count // 100
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert (peak(1500) - peak(300)) / 1200 < 20  # a list of the tree: ~150 bytes a file
