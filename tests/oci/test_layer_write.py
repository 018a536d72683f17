"""Layers written from a directory: what other tools read back from them."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from ocibuild.errors import OcibuildError
from ocibuild.idmap import IdMap, IdRange
from ocibuild.oci import mediatypes
from ocibuild.oci.layer import (
    Change,
    LayerInfo,
    apply_layer,
    write_layer_from_changes,
    write_layer_from_dir,
)
from tests.support.layer_trees import describe, write_files

SDE = 1_600_000_000


def _rich_tree(root: Path) -> None:
    write_files(root, {
        "bin/tool": b"#!/bin/sh\necho tool\n",
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
        "etc/hosts-link": "passwd",
        "usr/lib/x-y": b"sorts before x/ in byte order",
        "usr/lib/x/deep": b"deep",
        "caf\u00e9/" + "long" * 40: b"a name too long for ustar",
    })
    os.chmod(root / "bin/tool", 0o4755)
    os.link(root / "bin/tool", root / "usr/lib/tool-hardlink")
    os.mkfifo(root / "fifo")
    os.mknod(root / "null", 0o666 | 0o020000, os.makedev(1, 3))
    os.setxattr(root / "etc/passwd", "user.comment", b"kept")
    subprocess.run(["setcap", "cap_net_raw+ep", str(root / "bin/tool")], check=True)
    os.chown(root / "etc/passwd", 1234, 5678)
    (root / "empty-dir").mkdir(mode=0o700)


def _write(root: Path, out: Path, compression: str = "gzip", **kw: object) -> LayerInfo:
    with out.open("wb") as f:
        return write_layer_from_dir(root, f, compression=compression, **kw)  # type: ignore[arg-type]


def test_layer_reads_back_with_tarfile_and_gnu_tar(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _rich_tree(src)
    layer = tmp_path / "layer.tar.gz"
    info = _write(src, layer, source_date_epoch=SDE)
    blob = layer.read_bytes()
    assert info.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert info.size == len(blob)
    assert info.media_type == mediatypes.OCI_LAYER_GZIP
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0
    plain = subprocess.run(["gzip", "-dc", str(layer)], check=True, capture_output=True).stdout
    assert info.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()

    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert [n.encode() for n in names] == sorted(n.encode() for n in names)
    assert names.index("usr/lib/x-y") < names.index("usr/lib/x/deep")
    by_name = {m.name: m for m in members}
    assert all(m.uname == "" and m.gname == "" and m.mtime <= SDE for m in members)
    assert by_name["bin/tool"].mode == 0o4755
    assert by_name["bin/tool"].pax_headers["SCHILY.xattr.security.capability"]
    assert by_name["usr/lib/tool-hardlink"].islnk()
    assert by_name["usr/lib/tool-hardlink"].linkname == "bin/tool"
    assert by_name["etc/hosts-link"].issym() and by_name["etc/hosts-link"].linkname == "passwd"
    assert (by_name["etc/passwd"].uid, by_name["etc/passwd"].gid) == (1234, 5678)
    assert by_name["etc/passwd"].pax_headers["SCHILY.xattr.user.comment"] == "kept"
    assert by_name["fifo"].isfifo()
    null = by_name["null"]
    assert null.ischr() and (null.devmajor, null.devminor) == (1, 3)
    assert by_name["empty-dir"].isdir() and by_name["empty-dir"].mode == 0o700
    assert any(n.startswith("caf\u00e9/long") for n in names)
    assert not any("atime" in m.pax_headers or "ctime" in m.pax_headers for m in members)

    listing = subprocess.run(["tar", "-tzf", str(layer)], check=True, capture_output=True,
                             text=True).stdout.split("\n")
    assert "bin/" in listing and "usr/lib/x/deep" in listing


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_round_trip_keeps_what_a_user_sees(tmp_path: Path, compression: str) -> None:
    src = tmp_path / "src"
    _rich_tree(src)
    layer = tmp_path / "layer"
    info = _write(src, layer, compression, source_date_epoch=SDE)
    dst = tmp_path / "dst"
    with layer.open("rb") as f:
        assert apply_layer(f, dst) == info.diff_id
    assert describe(dst) == describe(src)
    assert (dst / "bin/tool").stat().st_ino == (dst / "usr/lib/tool-hardlink").stat().st_ino
    assert os.getxattr(dst / "etc/passwd", "user.comment") == b"kept"
    caps = subprocess.run(["getcap", str(dst / "bin/tool")], check=True, capture_output=True,
                          text=True).stdout
    assert "cap_net_raw" in caps
    assert (dst / "bin/tool").stat().st_mtime == SDE
    assert (dst / "usr/lib").stat().st_mtime == SDE


def test_mtimes_before_the_epoch_are_kept_and_later_ones_clamped(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_files(src, {"old": b"o", "new": b"n"})
    os.utime(src / "old", (1000, 1000))
    os.utime(src / "new", (SDE + 500, SDE + 500))
    layer = tmp_path / "layer"
    _write(src, layer, "none", source_date_epoch=SDE)
    with tarfile.open(layer) as tar:
        assert tar.getmember("old").mtime == 1000
        assert tar.getmember("new").mtime == SDE
    _write(src, layer, "none")
    with tarfile.open(layer) as tar:
        assert tar.getmember("new").mtime == SDE + 500


def test_id_map_translates_owners_and_refuses_unmapped_ones(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_files(src, {"mine": b"m", "theirs": b"t"})
    id_map = IdMap(uids=(IdRange(0, 100000, 65536),), gids=(IdRange(0, 100000, 65536),))
    for path in (src, src / "mine"):
        os.chown(path, 100000, 100000)
    os.chown(src / "theirs", 101000, 100005)
    layer = tmp_path / "layer"
    _write(src, layer, "none", id_map=id_map)
    with tarfile.open(layer) as tar:
        assert (tar.getmember("theirs").uid, tar.getmember("theirs").gid) == (1000, 5)
        assert tar.getmember("mine").uid == 0
    dst = tmp_path / "dst"
    with layer.open("rb") as f:
        apply_layer(f, dst, id_map=id_map)
    assert (dst / "theirs").stat().st_uid == 101000
    os.chown(src / "theirs", 4242, 4242)
    with pytest.raises(OcibuildError, match="theirs.*not mapped"):
        _write(src, layer, "none", id_map=id_map)


def test_apply_without_chown_keeps_the_callers_ids(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_files(src, {"f": b"x"})
    os.chown(src / "f", 1234, 1234)
    layer = tmp_path / "layer"
    _write(src, layer)
    with layer.open("rb") as f:
        apply_layer(f, tmp_path / "dst", chown=False)
    assert (tmp_path / "dst/f").stat().st_uid == 0


def test_unknown_compression_is_an_error_for_people(tmp_path: Path) -> None:
    with pytest.raises(OcibuildError, match="unknown compression 'brotli'"):
        write_layer_from_dir(tmp_path, io.BytesIO(), compression="brotli")


def test_missing_sources_are_errors_for_people(tmp_path: Path) -> None:
    with pytest.raises(OcibuildError, match="cannot read .*nowhere"):
        write_layer_from_dir(tmp_path / "nowhere", io.BytesIO())
    with pytest.raises(OcibuildError, match="cannot add .*ghost.* no such file"):
        write_layer_from_changes(tmp_path, [Change("ghost", "add")], io.BytesIO())
