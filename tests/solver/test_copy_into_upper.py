"""A COPY of a directory writes the overlay's upper directory itself, unmounted
(fileop._upper_dir): the upper must then hold just what a copy through the mounted
overlay leaves there, and a copy into a directory that holds something (an earlier
step's files) must merge with the lower layers exactly as one through the mount."""

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
        ctx = tmp_path / "ctx"
        (ctx / "sub").mkdir(parents=True)
        assert _upper_dir(spec, mnt, mnt / "full", source=str(ctx)) == \
            Path(spec.upper or "", "full"), "given what it copies, it merges"
        assert _upper_dir(spec, mnt, mnt) is None  # the root holds the base's files
        (mnt / "new" / "deep" / "x").write_text("x\n")
        assert _upper_dir(spec, mnt, made) is None
    finally:
        subprocess.run(["umount", mnt], check=True)


def _two_lowers(bottom: Path, top: Path) -> None:
    """Lower layers whose entries collide with the context's (_context) in every way."""
    (bottom / "app" / "d1" / "kept").mkdir(parents=True)  # a directory the layer above
    (bottom / "app" / "d1" / "kept" / "k.txt").write_text("k\n")  # turns into a file
    (bottom / "app" / "d0" / "inner").mkdir(parents=True)
    (bottom / "app" / "d0" / "inner" / "below.txt").write_text("below\n")
    (top / "app").mkdir(parents=True)
    (top / "app").chmod(0o711)
    (top / "app" / "d1").write_text("a file where the context has a directory\n")
    (top / "app" / "d0").mkdir()
    os.chown(top / "app" / "d0", 5, 6)
    (top / "app" / "d0" / "f00.txt").mkdir()  # a directory where the context has a file
    (top / "app" / "d0" / "f00.txt" / "x").write_text("x\n")
    (top / "app" / "d0" / "lower-only.txt").write_text("stays\n")
    outside = top / "elsewhere"
    outside.mkdir()
    (outside / "deep.txt").write_text("must not be written through\n")
    os.symlink("/elsewhere", top / "app" / "d2")  # a symbolic link where it has a dir
    (top / "app" / "node_modules").mkdir()
    (top / "app" / "node_modules" / "m.js").write_text("m\n")


def _mounted_listing(spec: RootFS, mnt: Path) -> dict[str, tuple[object, ...]]:
    """What the finished root shows: its upper over its lowers, mounted read-only."""
    mnt.mkdir()
    lowers = ":".join([spec.upper or "", *reversed(spec.lowers)])
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lowers}", mnt],
                   check=True)
    try:
        return _listing(mnt)
    finally:
        subprocess.run(["umount", mnt], check=True)


def test_a_copy_into_a_directory_that_holds_files_merges_as_through_the_mount(
        tmp_path: Path) -> None:
    ctx, bottom, top = tmp_path / "ctx", tmp_path / "bottom", tmp_path / "top"
    _context(ctx)
    (ctx / "d2" / "deep").mkdir(parents=True)
    (ctx / "d2" / "deep" / "deep.txt").write_text("from the context\n")
    (ctx / "node_modules").mkdir()
    (ctx / "node_modules" / "ignored.js").write_text("i\n")
    for path in (bottom, top):
        path.mkdir()
    _two_lowers(bottom, top)

    def overlay(name: str) -> RootFS:
        spec = _overlay(tmp_path, name, bottom)
        return RootFS.overlay([bottom, top], spec.upper or "", spec.work or "")

    ours = overlay("ours")
    userns.request_isolated(CopyInto(
        root=ours, source=RootFS.directory(ctx), sources=(".",), dest="/app", cwd="/",
        chown="", chmod="", excludes=(), parents=False, add=False, from_context=True,
        ignore=("node_modules",)))
    reference = overlay("reference")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    options = (f"lowerdir={top}:{bottom},upperdir={reference.upper},"
               f"workdir={reference.work}")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, mnt], check=True)
    try:
        from ocibuild.dockerignore import IgnoreMatcher

        ignore = IgnoreMatcher(["node_modules"])
        _Copier(ctx, None, None, True).copy_tree(
            "", _makedirs(mnt, "/app", (0, 0)), lambda rel, is_dir: ignore.matches(rel))
    finally:
        subprocess.run(["umount", mnt], check=True)

    got = _mounted_listing(ours, tmp_path / "ours-view")
    want = _mounted_listing(reference, tmp_path / "reference-view")
    assert {k: v for k, v in got.items() if k != "app"} == \
        {k: v for k, v in want.items() if k != "app"}
    assert got["app"][:3] == want["app"][:3] == (stat.S_IFDIR | 0o711, 0, 0)
    assert got["app/d0/lower-only.txt"][4] == want["app/d0/lower-only.txt"][4]
    assert "app/d0/inner/below.txt" in got and "app/d1/kept" not in got
    assert stat.S_ISREG(got["app/d0/f00.txt"][0]) and "app/d0/f00.txt/x" not in got
    assert stat.S_ISDIR(got["app/d2"][0]) and "app/d2/deep/deep.txt" in got
    assert (top / "elsewhere" / "deep.txt").read_text() == "must not be written through\n"
    assert "app/node_modules/m.js" in got and "app/node_modules/ignored.js" not in got
    upper = Path(ours.upper or "")
    assert not (upper / "app" / "node_modules").exists(), "an excluded directory stays below"
    assert (upper / "app" / "d0" / "inner").is_dir()
    # written in the upper directory, not through the mount (which makes a directory
    # that replaces a file opaque)
    assert "trusted.overlay.opaque" not in os.listxattr(upper / "app" / "d1")
    assert "trusted.overlay.opaque" in os.listxattr(Path(reference.upper or "", "app", "d1"))
