"""Hostile layers: nothing may be written outside the target, whatever the tar says.

Symlinks on the way to an entry are followed as chroot would (containerd's fs.RootPath):
an absolute target starts again at the root, `..` stops there; what a hostile layer
aims outside lands inside the root instead."""

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


def _contained(arena: Arena, layer: bytes) -> None:
    before = arena.around()
    apply_layer(io.BytesIO(layer), arena.root)
    assert arena.around() == before
    assert (arena.outside / "secret").read_bytes() == b"secret"
    assert (arena.outside / "secret").stat().st_nlink == 1


def _inside(arena: Arena, path: Path | str) -> Path:
    """Where an absolute path of the host lands when read inside the root."""
    return arena.root / str(path).lstrip("/")


def test_dotdot_names_are_refused(arena: Arena) -> None:
    _refused(arena, TarBuilder().file("../x", b"pwned").bytes(), "../x")
    _refused(arena, TarBuilder().file("a/../../x", b"pwned").bytes(), "a/../../x")
    assert not (arena.top / "x").exists()


def test_absolute_names_land_inside_the_root(arena: Arena) -> None:
    target = f"{arena.outside}/abs"
    etc_name = f"/etc/ocib-hostile-{os.getpid()}"
    _contained(arena, TarBuilder().file(target, b"pwned").file(etc_name, b"here").bytes())
    assert _inside(arena, target).read_bytes() == b"pwned"
    assert _inside(arena, etc_name).read_bytes() == b"here"
    assert not Path(etc_name).exists()


@pytest.mark.parametrize("link_target", ["/", "../..", "OUTSIDE"])
def test_writing_through_a_symlink_from_the_layer_stays_inside(arena: Arena,
                                                               link_target: str) -> None:
    target = str(arena.outside) if link_target == "OUTSIDE" else link_target
    through = {"/": f"evil{arena.outside}/planted", "../..": f"evil/{arena.top.name}/outside/"
               "planted", "OUTSIDE": "evil/planted"}[link_target]
    lands = {"/": _inside(arena, arena.outside),
             "../..": arena.root / arena.top.name / "outside",
             "OUTSIDE": _inside(arena, arena.outside)}[link_target] / "planted"
    _contained(arena, TarBuilder().symlink("evil", target).file(through, b"pwned").bytes())
    assert lands.read_bytes() == b"pwned"
    assert not (arena.outside / "planted").exists()


def test_writing_through_a_symlink_already_in_the_tree_stays_inside(arena: Arena) -> None:
    (arena.root / "etc").symlink_to(arena.outside)
    _contained(arena, TarBuilder().file("etc/passwd", b"pwned").bytes())
    assert _inside(arena, arena.outside / "passwd").read_bytes() == b"pwned"
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
    before = arena.around()
    with pytest.raises(OcibuildError, match="'hl': hard link target .* does not exist"):
        apply_layer(io.BytesIO(TarBuilder().hardlink("hl", str(arena.outside / "secret"))
                               .bytes()), arena.root)  # read inside the root: not there
    assert arena.around() == before
    assert not (arena.root / "hl").exists()


def test_hard_link_through_a_symlink_looks_inside_the_root(arena: Arena) -> None:
    layer = TarBuilder().symlink("lnk", str(arena.outside)).hardlink("hl", "lnk/secret").bytes()
    before = arena.around()
    with pytest.raises(OcibuildError, match="'hl': hard link target 'lnk/secret' does not"):
        apply_layer(io.BytesIO(layer), arena.root)
    assert arena.around() == before
    assert (arena.outside / "secret").stat().st_nlink == 1


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
    _contained(arena, TarBuilder().symlink("lnk", str(arena.outside))
               .file("lnk/.wh.secret", b"").bytes())
    _contained(arena, base.file("lnk/.wh..wh..opq", b"").bytes())
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
