"""A COPY of a directory into one that holds nothing (made by the COPY, or an empty
WORKDIR) writes the overlay's upper directory itself, unmounted (fileop._upper_dir):
the upper must then hold just what a copy through the mounted overlay leaves there, and
a copy into a directory that holds something must still merge with the lower layer."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from ocibuild.idspace import userns
from ocibuild.idspace.requests import RootFS
from ocibuild.solver.fileop import CopyInto, _Copier, _makedirs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts overlays (needs root)")

NOW_SET = ("new", "new/deep", "empty", "full")  # directories whose mtime is the copy's time


def _context(root: Path) -> None:
    for d in range(3):
        sub = root / f"d{d}" / "inner"
        sub.mkdir(parents=True)
        for f in range(80):
            p = root / f"d{d}" / f"f{f:02}.txt"
            p.write_text(f"{d}-{f}\n" * (f + 1))
            p.chmod(0o600 if f % 4 else 0o755)
            os.utime(p, ns=(0, 1_600_000_000_000_000_000 + d * 100 + f))
        (sub / "deep.txt").write_text("deep\n")
        os.symlink("f01.txt", root / f"d{d}" / "link")
    (root / "top.txt").write_text("top\n")
    os.utime(root / "d0", ns=(0, 1_500_000_000_000_000_000))


def _lower(root: Path) -> None:
    (root / "empty").mkdir(parents=True)
    (root / "empty").chmod(0o750)
    os.chown(root / "empty", 7, 8)
    (root / "full").mkdir()
    (root / "full" / "old.txt").write_text("old\n")
    (root / "full" / "top.txt").write_text("replaced\n")
    os.symlink("full", root / "link")


def _listing(root: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                body: object = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode):
                body = st.st_rdev
            else:
                body = ""
            mtime = None if rel in NOW_SET else st.st_mtime_ns
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, mtime, body)
    return out


def _overlay(tmp: Path, name: str, lower: Path) -> RootFS:
    upper, work = tmp / name / "upper", tmp / name / "work"
    upper.mkdir(parents=True)
    work.mkdir()
    return RootFS.overlay([lower], upper, work)


def _through_the_mount(spec: RootFS, ctx: Path, dest: str, mnt: Path) -> None:
    """The copy as it was made before: every write through the mounted overlay."""
    mnt.mkdir()
    options = f"lowerdir={spec.lowers[0]},upperdir={spec.upper},workdir={spec.work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, mnt], check=True)
    try:
        target = _makedirs(mnt, dest, (0, 0))
        _Copier(ctx, None, None, True).copy_tree("", target, None)
    finally:
        subprocess.run(["umount", mnt], check=True)


@pytest.mark.parametrize("dest", ["/new/deep", "/empty", "/full", "/link"])
def test_a_copy_leaves_in_the_upper_what_the_mounted_overlay_would(
        tmp_path: Path, dest: str) -> None:
    ctx, lower = tmp_path / "ctx", tmp_path / "lower"
    _context(ctx)
    _lower(lower)
    ours = _overlay(tmp_path, "ours", lower)
    userns.request_isolated(CopyInto(
        root=ours, source=RootFS.directory(ctx), sources=(".",), dest=dest, cwd="/",
        chown="", chmod="", excludes=(), parents=False, add=False, from_context=True))
    reference = _overlay(tmp_path, "reference", lower)
    _through_the_mount(reference, ctx, dest, tmp_path / "mnt")

    got, want = _listing(Path(ours.upper or "")), _listing(Path(reference.upper or ""))
    assert got == want
    copied = "full" if dest in ("/full", "/link") else dest.strip("/")
    assert f"{copied}/d1/inner/deep.txt" in got
    if dest == "/empty":  # the WORKDIR-like directory was copied up with its owner
        assert got["empty"][:3] == (stat.S_IFDIR | 0o750, 7, 8)
    if copied == "full":  # merged with the lower layer's directory, not written alone
        assert "full/old.txt" not in got and got["full/top.txt"] == want["full/top.txt"]


def test_only_a_directory_that_holds_nothing_is_written_in_the_upper(tmp_path: Path) -> None:
    from ocibuild.solver.fileop import _upper_dir

    lower = tmp_path / "lower"
    _lower(lower)
    spec = _overlay(tmp_path, "o", lower)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    options = f"lowerdir={lower},upperdir={spec.upper},workdir={spec.work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, mnt], check=True)
    try:
        made = _makedirs(mnt, "/new/deep", (0, 0))
        assert _upper_dir(spec, mnt, made) == Path(spec.upper or "", "new/deep")
        assert not (Path(spec.upper or "") / "empty").exists()
        assert _upper_dir(spec, mnt, mnt / "empty") == Path(spec.upper or "", "empty")
        assert (Path(spec.upper or "") / "empty").stat().st_uid == 7, "copied up first"
        assert _upper_dir(spec, mnt, mnt / "full") is None  # merges with the lower one
        assert _upper_dir(spec, mnt, mnt) is None  # the root holds the base's files
        (mnt / "new" / "deep" / "x").write_text("x\n")
        assert _upper_dir(spec, mnt, made) is None
    finally:
        subprocess.run(["umount", mnt], check=True)
