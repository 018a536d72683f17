"""Layer entries below symlinks, applied as containerd's archive/tar.go applyNaive does
(parents resolved with continuity's fs.RootPath): whiteouts and hard links below a link
act where the link leads inside the root, and an overlay layer directory marks its
whiteouts at those resolved paths."""

from __future__ import annotations

import io
from pathlib import Path

from ocibuild.oci.extract import Marks, apply_layer
from tests.support.layer_trees import TarBuilder, describe


def test_whiteouts_below_a_link_hide_what_the_link_leads_to(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply_layer(io.BytesIO(TarBuilder().dir("real").file("real/x", b"x").file("real/y", b"y")
                           .dir("d").file("d/old", b"old").bytes()), root)
    marks: Marks = []
    layer = (TarBuilder().symlink("lnk", "real").file("lnk/.wh.x", b"")
             .symlink("up", "/d").file("up/.wh..wh..opq", b"").file("up/new", b"new")
             .file("lnk/.wh.y", b"").file("real/y", b"again").bytes())
    apply_layer(io.BytesIO(layer), root, marks=marks)
    tree = describe(root)
    assert "real/x" not in tree and tree["real/y"][3] == b"again"
    assert "d/old" not in tree and tree["d/new"][3] == b"new"
    # what an overlay layer directory marks: resolved paths; real/y is written again
    assert marks == [("whiteout", ("real", "x")), ("opaque", ("d",))]


def test_hard_link_below_a_link_links_what_it_leads_to(tmp_path: Path) -> None:
    root = tmp_path / "root"
    layer = (TarBuilder().dir("real").file("real/f", b"data").symlink("lnk", "../../real")
             .hardlink("h", "lnk/f").bytes())
    apply_layer(io.BytesIO(layer), root)
    assert (root / "h").read_bytes() == b"data"
    assert (root / "h").stat().st_ino == (root / "real" / "f").stat().st_ino
