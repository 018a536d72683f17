"""COPY --from of one file takes it from the top layer of the stage's stack without
mounting the stack (fileop.single_file_layer) only where the mounted overlay would show
that very file; the copy is then the same as one through the mount."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from ocibuild.idspace import userns
from ocibuild.idspace.requests import RootFS
from ocibuild.solver.fileop import CopyInto, single_file_layer


def _layers(tmp: Path) -> tuple[Path, Path]:
    bottom, top = tmp / "bottom", tmp / "top"
    (bottom / "app").mkdir(parents=True)
    (bottom / "app" / "bin").write_text("from below\n")
    (bottom / "lib").mkdir()
    (bottom / "lib" / "x").write_text("x\n")
    (bottom / "only-below").write_text("below\n")
    (top / "app").mkdir(parents=True)
    (top / "app" / "bin").write_text("from the top\n")
    (top / "app" / "bin").chmod(0o751)
    os.utime(top / "app" / "bin", ns=(0, 1_600_000_000_123_456_789))
    (top / "dir").mkdir()
    os.symlink("app", top / "link")
    return bottom, top


def _copy(source: RootFS, pattern: str) -> CopyInto:
    root = RootFS.directory("/nonexistent")
    return CopyInto(root=root, source=source, sources=(pattern,), dest="/out", cwd="/",
                    chown="", chmod="", excludes=(), parents=False, add=False,
                    from_context=False)


def test_only_a_file_the_top_layer_holds_on_a_path_of_its_own_directories(
        tmp_path: Path) -> None:
    bottom, top = _layers(tmp_path)
    stack = RootFS.stack([bottom, top])
    for taken in ("/app/bin", "app/bin", "./app//bin"):
        assert single_file_layer(_copy(stack, taken)) == top, taken
    for mounted in ("/only-below",  # the top layer does not hold it
                    "/lib/x",  # nor a directory on its way
                    "/link/bin",  # a link on the way: the mount resolves it
                    "/dir",  # a directory: merged with the layers below
                    "/app/*",  # a pattern
                    "/app/../app/bin"):
        assert single_file_layer(_copy(stack, mounted)) is None, mounted
    assert single_file_layer(_copy(RootFS.stack([top]), "/app/bin")) is None  # no mount
    two = dataclasses.replace(_copy(stack, "/app/bin"), sources=("/app/bin", "/lib/x"))
    assert single_file_layer(two) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts overlays and makes a whiteout (root)")
def test_a_file_the_top_layer_removed_is_not_taken_from_below(tmp_path: Path) -> None:
    bottom, top = _layers(tmp_path)
    os.mknod(top / "only-below", stat.S_IFCHR | 0o600, os.makedev(0, 0))  # a whiteout
    assert single_file_layer(_copy(RootFS.stack([bottom, top]), "/only-below")) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts overlays (needs root)")
def test_the_copy_is_the_one_through_the_mount(tmp_path: Path) -> None:
    bottom, top = _layers(tmp_path)
    base = tmp_path / "base"
    base.mkdir()
    uppers = {}
    for name in ("ours", "mounted"):
        upper, work = tmp_path / name / "upper", tmp_path / name / "work"
        upper.mkdir(parents=True)
        work.mkdir()
        # "mounted": the same stack with a layer on top that holds nothing, which the
        # copy's source then needs the mount for (the top layer lacks the file)
        stack = [bottom, top] if name == "ours" else [bottom, top, tmp_path / "empty"]
        (tmp_path / "empty").mkdir(exist_ok=True)
        request = CopyInto(root=RootFS.overlay([base], upper, work),
                           source=RootFS.stack(stack), sources=("/app/bin",), dest="/bin",
                           cwd="/", chown="", chmod="", excludes=(), parents=False,
                           add=False, from_context=False)
        assert (single_file_layer(request) is None) == (name == "mounted")
        userns.request_isolated(request)
        st = (upper / "bin").lstat()
        uppers[name] = ((upper / "bin").read_text(), stat.S_IMODE(st.st_mode), st.st_uid,
                        st.st_gid, st.st_mtime_ns)
    assert uppers["ours"] == uppers["mounted"]
    assert uppers["ours"][:2] == ("from the top\n", 0o751)
    assert uppers["ours"][4] == 1_600_000_000_123_456_789
