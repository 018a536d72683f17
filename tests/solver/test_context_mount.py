"""The filtered context tree of a bind mount: hard links on one filesystem, copies
across filesystems or when asked, metadata of the directories kept."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocibuild.dockerignore import IgnoreMatcher, read_patterns
from ocibuild.solver.context_mount import any_ignored, filtered_tree

IGNORE = IgnoreMatcher(read_patterns("secret\nlogs\n!logs/keep.log\n*.tmp\n"))


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    for rel in ("a.txt", "secret", "x.tmp", "sub/x.tmp", "logs/keep.log", "logs/drop.log",
                "clean/c.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    os.symlink("secret", root / "link")
    os.chmod(root / "sub", 0o555)
    return root


def _listing(tree: Path) -> list[str]:
    return sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))


SHOWN = ["a.txt", "clean", "clean/c.txt", "link", "logs", "logs/keep.log", "sub",
         "sub/x.tmp"]


def test_any_ignored_looks_under_the_mounted_directory_only(ctx: Path) -> None:
    assert any_ignored(ctx, "", IGNORE) and any_ignored(ctx, "logs", IGNORE)
    assert not any_ignored(ctx, "clean", IGNORE) and not any_ignored(ctx, "sub", IGNORE)
    assert any_ignored(ctx, "secret", IGNORE) and not any_ignored(ctx, "a.txt", IGNORE)
    assert not any_ignored(ctx, "", IgnoreMatcher([]))


@pytest.mark.parametrize("link", [True, False])
def test_the_tree_holds_what_is_not_ignored(ctx: Path, tmp_path: Path, link: bool) -> None:
    tree = tmp_path / "tree"
    assert filtered_tree(ctx, "", tree, IGNORE, link=link)
    assert _listing(tree) == SHOWN
    assert os.readlink(tree / "link") == "secret"  # dangling, as in the filtered context
    linked = os.stat(tree / "a.txt").st_ino == os.stat(ctx / "a.txt").st_ino
    assert linked == link
    assert (tree / "sub").stat().st_mode & 0o777 == 0o555
    assert (tree / "sub").stat().st_mtime_ns == (ctx / "sub").stat().st_mtime_ns


@pytest.fixture
def other_fs() -> Iterator[Path]:
    if os.stat("/dev/shm").st_dev == os.stat(tempfile.gettempdir()).st_dev:
        pytest.skip("/dev/shm is on the same filesystem as the temporary directory")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as path:
        yield Path(path)


def test_another_filesystem_gets_copies(ctx: Path, other_fs: Path) -> None:
    tree = other_fs / "tree"
    assert filtered_tree(ctx, "", tree, IGNORE, link=True)
    assert _listing(tree) == SHOWN
    assert (tree / "logs" / "keep.log").read_text() == "logs/keep.log"


def test_an_ignored_directory_holds_only_what_is_re_included(ctx: Path,
                                                             tmp_path: Path) -> None:
    assert filtered_tree(ctx, "logs", tmp_path / "logs", IGNORE, link=True)
    assert _listing(tmp_path / "logs") == ["keep.log"]
    only = IgnoreMatcher(["logs"])
    assert not filtered_tree(ctx, "logs", tmp_path / "none", only, link=True)


def test_git_modes_show_modes_as_git_records_them(ctx: Path, tmp_path: Path) -> None:
    os.chmod(ctx / "a.txt", 0o664)  # cloned under umask 002: copied, the context kept
    os.chmod(ctx / "clean" / "c.txt", 0o644)  # already as git has it: linked
    os.chmod(ctx / "logs" / "keep.log", 0o775)
    tree = tmp_path / "tree"
    assert filtered_tree(ctx, "", tree, IGNORE, link=True, git_modes=True)
    assert _listing(tree) == SHOWN
    modes = {rel: os.lstat(tree / rel).st_mode & 0o777 for rel in SHOWN if rel != "link"}
    assert modes == {"a.txt": 0o644, "clean": 0o755, "clean/c.txt": 0o644, "logs": 0o755,
                     "logs/keep.log": 0o755, "sub": 0o755, "sub/x.tmp": 0o644}
    assert os.stat(ctx / "a.txt").st_mode & 0o777 == 0o664
    assert os.stat(tree / "a.txt").st_ino != os.stat(ctx / "a.txt").st_ino
    assert os.stat(tree / "clean/c.txt").st_ino == os.stat(ctx / "clean/c.txt").st_ino
