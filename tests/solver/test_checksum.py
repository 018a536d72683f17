from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ocibuild.solver.checksum import ContextChecksums
from ocibuild.solver.selection import expand


def _tree(root: Path) -> Path:
    (root / "src" / "sub").mkdir(parents=True)
    (root / "src" / "a.txt").write_text("a")
    (root / "src" / "sub" / "b.py").write_text("b")
    (root / "other.txt").write_text("o")
    os.symlink("src/a.txt", root / "link")
    os.symlink("/etc/passwd", root / "escape")
    return root


def test_wildcards_match_per_segment(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    assert expand(root, "*.txt") == ["other.txt"]
    assert expand(root, "src/*") == ["src/a.txt", "src/sub"]
    assert expand(root, "s?c/[a-b].txt") == ["src/a.txt"]
    assert expand(root, "nothing*") == []


def test_checksum_ignores_mtime_and_location_but_not_content_or_mode(tmp_path: Path) -> None:
    one = _tree(tmp_path / "one")
    two = tmp_path / "two"
    shutil.copytree(one, two, symlinks=True)
    os.utime(two / "src" / "a.txt", (1, 1))
    c1, c2 = ContextChecksums(one), ContextChecksums(two)
    assert c1.checksum(["src"]) == c2.checksum(["src"])
    (two / "src" / "a.txt").chmod(0o755)
    assert c1.checksum(["src"]) != ContextChecksums(two).checksum(["src"])
    # --chmod replaces the mode, so the mode is left out
    assert c1.checksum(["src"], with_mode=False) == \
        ContextChecksums(two).checksum(["src"], with_mode=False)
    (two / "src" / "a.txt").write_text("changed")
    assert c1.checksum(["src"], with_mode=False) != \
        ContextChecksums(two).checksum(["src"], with_mode=False)


def test_unrelated_files_do_not_change_the_checksum(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    before = ContextChecksums(root).checksum(["src/a.txt"])
    (root / "other.txt").write_text("different")
    assert ContextChecksums(root).checksum(["src/a.txt"]) == before


def test_symlinks_are_hashed_as_links_and_never_followed_out(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    # the top-level source is followed inside the context; /etc/passwd is never read
    assert ContextChecksums(root).checksum(["link"]) == ContextChecksums(root).checksum(
        ["link"])
    with pytest.raises(FileNotFoundError):
        ContextChecksums(root).checksum(["escape"])
    os.symlink("../../../../../etc", root / "src" / "up")
    whole = ContextChecksums(root)
    whole.checksum(["."])
    assert whole.files_hashed == 3  # a.txt, b.py, other.txt: links are not followed


def test_memo_rereads_only_changed_files(tmp_path: Path) -> None:
    root = _tree(tmp_path / "ctx")
    memo = tmp_path / "memo.json"
    first = ContextChecksums(root, memo)
    value = first.checksum(["."])
    first.save()
    second = ContextChecksums(root, memo)
    assert second.checksum(["."]) == value
    assert second.files_hashed == 0
    (root / "src" / "a.txt").write_text("new content")
    third = ContextChecksums(root, memo)
    assert third.checksum(["."]) != value
    assert third.files_hashed == 1


def test_missing_source_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ContextChecksums(_tree(tmp_path)).checksum(["nope.txt"])
