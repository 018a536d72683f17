"""Hostile layers: nothing may be written outside the target, whatever the tar says."""

from __future__ import annotations

import gzip
import io
import os
import resource
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ocibuild.errors import OcibuildError, UnsafeLayerError
from ocibuild.oci.layer import apply_layer
from tests.support.layer_trees import TarBuilder, describe, header_only


@dataclass
class Arena:
    top: Path
    root: Path
    outside: Path

    def around(self) -> dict[str, tuple]:
        """Everything in the arena except the target itself."""
        return {k: v for k, v in describe(self.top).items()
                if k != "root" and not k.startswith("root/")}


@pytest.fixture
def arena(tmp_path: Path) -> Arena:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    root = tmp_path / "root"
    root.mkdir()
    return Arena(tmp_path, root, outside)


def _refused(arena: Arena, layer: bytes, entry: str) -> UnsafeLayerError:
    before = arena.around()
    with pytest.raises(UnsafeLayerError) as caught:
        apply_layer(io.BytesIO(layer), arena.root)
    assert entry in str(caught.value)
    assert arena.around() == before
    assert (arena.outside / "secret").read_bytes() == b"secret"
    assert (arena.outside / "secret").stat().st_nlink == 1
    return caught.value


def test_dotdot_names_are_refused(arena: Arena) -> None:
    _refused(arena, TarBuilder().file("../x", b"pwned").bytes(), "../x")
    _refused(arena, TarBuilder().file("a/../../x", b"pwned").bytes(), "a/../../x")
    assert not (arena.top / "x").exists()


def test_absolute_names_are_refused(arena: Arena) -> None:
    target = f"{arena.outside}/abs"
    _refused(arena, TarBuilder().file(target, b"pwned").bytes(), target)
    etc_name = f"/etc/ocib-hostile-{os.getpid()}"
    _refused(arena, TarBuilder().file(etc_name, b"pwned").bytes(), etc_name)
    assert not Path(etc_name).exists()


@pytest.mark.parametrize("link_target", ["/", "../..", "OUTSIDE"])
def test_writing_through_a_symlink_from_the_layer_is_refused(arena: Arena,
                                                             link_target: str) -> None:
    target = str(arena.outside) if link_target == "OUTSIDE" else link_target
    through = {"/": f"evil{arena.outside}/planted", "../..": f"evil/{arena.top.name}/outside/"
               "planted", "OUTSIDE": "evil/planted"}[link_target]
    layer = TarBuilder().symlink("evil", target).file(through, b"pwned").bytes()
    error = _refused(arena, layer, through)
    assert "symlink" in str(error)
    assert not (arena.outside / "planted").exists()


def test_writing_through_a_symlink_already_in_the_tree_is_refused(arena: Arena) -> None:
    (arena.root / "etc").symlink_to(arena.outside)
    _refused(arena, TarBuilder().file("etc/passwd", b"pwned").bytes(), "etc/passwd")
    assert not (arena.outside / "passwd").exists()


def test_an_existing_symlink_is_replaced_not_written_through(arena: Arena) -> None:
    (arena.root / "f").symlink_to(arena.outside / "secret")
    (arena.root / "d").symlink_to(arena.outside)
    layer = TarBuilder().dir("d").file("f", b"new").bytes()
    before = arena.around()
    apply_layer(io.BytesIO(layer), arena.root)
    assert arena.around() == before
    assert (arena.root / "f").read_bytes() == b"new" and not (arena.root / "f").is_symlink()
    assert (arena.root / "d").is_dir() and not (arena.root / "d").is_symlink()


def test_hard_links_to_paths_outside_are_refused(arena: Arena) -> None:
    _refused(arena, TarBuilder().hardlink("hl", "../outside/secret").bytes(), "hl")
    _refused(arena, TarBuilder().hardlink("hl", str(arena.outside / "secret")).bytes(), "hl")
    assert not (arena.root / "hl").exists()


def test_hard_link_through_a_symlink_is_refused(arena: Arena) -> None:
    layer = TarBuilder().symlink("lnk", str(arena.outside)).hardlink("hl", "lnk/secret").bytes()
    _refused(arena, layer, "hl")


def test_hard_link_to_a_symlink_links_the_symlink_itself(arena: Arena) -> None:
    layer = (TarBuilder().symlink("s", str(arena.outside / "secret")).hardlink("h", "s")
             .file("h", b"pwned").file("s", b"pwned too").bytes())
    before = arena.around()
    apply_layer(io.BytesIO(layer), arena.root)
    assert arena.around() == before
    assert (arena.outside / "secret").read_bytes() == b"secret"
    assert (arena.root / "h").read_bytes() == b"pwned"


def test_symlink_loops_are_refused(arena: Arena) -> None:
    layer = TarBuilder().symlink("a", "b").symlink("b", "a").file("a/x", b"loop").bytes()
    _refused(arena, layer, "a/x")
    assert describe(arena.root) == {"a": ("symlink", None, (0, 0), "b"),
                                    "b": ("symlink", None, (0, 0), "a")}


def test_whiteouts_cannot_reach_outside(arena: Arena) -> None:
    base = TarBuilder().symlink("lnk", str(arena.outside))
    _refused(arena, TarBuilder().symlink("lnk", str(arena.outside)).file("lnk/.wh.secret", b"")
             .bytes(), "lnk/.wh.secret")
    _refused(arena, base.file("lnk/.wh..wh..opq", b"").bytes(), "lnk/.wh..wh..opq")
    _refused(arena, TarBuilder().file("../.wh.secret", b"").bytes(), "../.wh.secret")
    _refused(arena, TarBuilder().file("sub/.wh..", b"").bytes(), "sub/.wh..")


def test_header_claiming_10gb_without_data_fails_cleanly(arena: Arena) -> None:
    layer = gzip.compress(header_only("big", 10 << 30), mtime=0)
    before = arena.around()
    started = time.monotonic()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(OcibuildError, match="'big'.*truncated|truncated.*'big'"):
        apply_layer(io.BytesIO(layer), arena.root)
    assert time.monotonic() - started < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 50 * 1024
    assert not (arena.root / "big").exists()
    assert arena.around() == before


def test_header_claiming_10gb_with_some_data_removes_the_partial_file(arena: Arena) -> None:
    layer = header_only("big", 10 << 30) + b"x" * (3 << 20)
    with pytest.raises(OcibuildError, match="truncated"):
        apply_layer(io.BytesIO(layer), arena.root)
    assert describe(arena.root) == {}


def test_huge_pax_header_is_refused_without_buffering_it(arena: Arena) -> None:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = 2 << 30
    layer = info.tobuf(format=tarfile.USTAR_FORMAT) + b"9 a=b\n" * 1000
    with pytest.raises(OcibuildError, match="metadata record"):
        apply_layer(io.BytesIO(layer), arena.root)
    assert describe(arena.root) == {}


def test_garbage_is_not_a_layer(arena: Arena) -> None:
    with pytest.raises(OcibuildError, match="not a tar stream"):
        apply_layer(io.BytesIO(b"hello, this is not a tar file" * 40), arena.root)
    with pytest.raises(OcibuildError, match="gzip"):
        apply_layer(io.BytesIO(b"\x1f\x8b\x08\x00" + b"\xff" * 600), arena.root)


def test_duplicate_entries_last_one_wins_and_stays_inside(arena: Arena) -> None:
    layer = (TarBuilder()
             .file("d", b"one").file("d", b"two")
             .dir("x").file("x/inner", b"in").file("x", b"now a file")
             .symlink("y", str(arena.outside / "secret")).file("y", b"not through")
             .file("z", b"file first").dir("z").file("z/child", b"c")
             .bytes())
    before = arena.around()
    apply_layer(io.BytesIO(layer), arena.root)
    assert arena.around() == before
    tree = describe(arena.root)
    assert tree["d"][3] == b"two"
    assert tree["x"][0] == "file" and tree["x"][3] == b"now a file"
    assert tree["y"] == ("file", 0o644, (0, 0), b"not through")
    assert tree["z"][0] == "dir" and tree["z/child"][3] == b"c"
