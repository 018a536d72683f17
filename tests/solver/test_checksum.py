from __future__ import annotations

import os
import shutil
import tracemalloc
from pathlib import Path

import pytest

from ocibuild.chmod import git_mode
from ocibuild.solver import checksum
from ocibuild.solver.checksum import ContextChecksums, EntryDigests
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


def _many_files(root: Path, count: int) -> Path:
    for i in range(count):
        directory = root / f"d{i // 100:03d}"
        if i % 100 == 0:
            directory.mkdir(parents=True)
        (directory / f"file-{i:05d}.txt").write_bytes(b"%d" % i)
    return root


def _peak_bytes(root: Path, memo: Path) -> int:
    """Peak Python memory of a build's checksums over `root`: every file hashed and the
    memo written, then the memo read back."""
    tracemalloc.start()
    try:
        for _ in range(2):
            checksums = ContextChecksums(root, memo)
            checksums.checksum(["."])
            checksums.save()
            del checksums
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_remembered_hashes_cost_little_memory_per_file(tmp_path: Path) -> None:
    """A big context's checksums must not hold ~200 bytes of objects per file (300,000
    files made a build's peak memory 146 MB): each file costs about its packed entry."""
    small, big = _many_files(tmp_path / "small", 600), _many_files(tmp_path / "big", 3000)
    per_file = (_peak_bytes(big, tmp_path / "big.memo")
                - _peak_bytes(small, tmp_path / "small.memo")) / (3000 - 600)
    assert per_file < 120
    # packed per directory, the memo still finds each file: one change, one file read
    (big / "d017" / "file-01750.txt").write_bytes(b"changed")
    again = ContextChecksums(big, tmp_path / "big.memo")
    again.checksum(["."])
    assert again.files_hashed == 1
    (tmp_path / "big.memo").write_bytes((tmp_path / "big.memo").read_bytes()[:-10])
    cut = ContextChecksums(big, tmp_path / "big.memo")  # a memo cut short: hashed again
    cut.checksum(["."])
    assert cut.files_hashed == 3000


def test_missing_source_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ContextChecksums(_tree(tmp_path)).checksum(["nope.txt"])


@pytest.mark.parametrize(("mode", "expected"), [
    (0o100664, 0o644), (0o100644, 0o644), (0o100600, 0o644), (0o100444, 0o644),
    (0o100775, 0o755), (0o100700, 0o755), (0o100744, 0o755), (0o100001, 0o755),
    (0o104755, 0o755),  # set-user-id: git cannot record it
    (0o040775, 0o755), (0o040700, 0o755), (0o041777, 0o755),
    (0o120777, 0o777),  # a symbolic link keeps its own
])
def test_git_mode_is_the_mode_git_checks_out(mode: int, expected: int) -> None:
    assert git_mode(mode) == expected


def _clone_under(umask: int, one: Path, dest: Path) -> Path:
    """`one` as a checkout made under `umask` would have it: git keeps only the
    execute bit."""
    shutil.copytree(one, dest, symlinks=True)
    for path in [dest, *dest.rglob("*")]:
        if path.is_symlink():
            continue
        executable = path.is_dir() or os.stat(path).st_mode & 0o100
        path.chmod((0o777 if executable else 0o666) & ~umask)
    return dest


def test_git_modes_give_two_umasks_one_checksum(tmp_path: Path) -> None:
    one = _tree(tmp_path / "one")
    (one / "src" / "run.sh").write_text("#!/bin/sh\n")
    (one / "src" / "run.sh").chmod(0o755)
    loose = _clone_under(0o002, one, tmp_path / "loose")
    strict = _clone_under(0o022, one, tmp_path / "strict")
    assert ContextChecksums(loose).checksum(["src"]) != \
        ContextChecksums(strict).checksum(["src"])
    assert ContextChecksums(loose, git_modes=True).checksum(["src"]) == \
        ContextChecksums(strict, git_modes=True).checksum(["src"])
    # an execute bit is what git records: losing it changes the key
    (strict / "src" / "run.sh").chmod(0o644)
    assert ContextChecksums(loose, git_modes=True).checksum(["src"]) != \
        ContextChecksums(strict, git_modes=True).checksum(["src"])


def _mixed_sizes(root: Path) -> Path:
    """Big files (hashed ahead on other threads) before, between and after small ones."""
    big = checksum.HASH_AHEAD_SIZE
    (root / "a-big").mkdir(parents=True)
    for i in range(3):
        (root / "a-big" / f"r{i}.bin").write_bytes(bytes([i]) * (big + i))
    (root / "b-small").mkdir()
    for i in range(50):
        (root / "b-small" / f"f{i:02d}").write_bytes(b"%d" % i)
    (root / "b-small" / "f25-big").write_bytes(b"x" * big)
    (root / "c-last.bin").write_bytes(b"y" * (2 * big))
    return root


def test_files_hashed_ahead_give_the_key_of_files_hashed_in_turn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _mixed_sizes(tmp_path / "ctx")
    memo = tmp_path / "memo"
    ahead = ContextChecksums(root, memo)
    entries = EntryDigests(1000)
    key = ahead.checksum(["."], entries=entries)
    ahead.save()
    assert ahead.files_hashed == 55
    with monkeypatch.context() as patch:
        patch.setattr(checksum, "HASH_AHEAD_SIZE", 1 << 60)  # every file on this thread
        in_turn = ContextChecksums(root)
        in_order = EntryDigests(1000)
        assert in_turn.checksum(["."], entries=in_order) == key
    assert entries.digests == in_order.digests
    again = ContextChecksums(root, memo)  # the big files' hashes were remembered too
    assert again.checksum(["."]) == key and again.files_hashed == 0
    (root / "a-big" / "r1.bin").write_bytes(b"\1" * checksum.HASH_AHEAD_SIZE + b"changed")
    changed = ContextChecksums(root, memo)
    assert changed.checksum(["."]) != key and changed.files_hashed == 1


def test_the_first_unreadable_file_in_walk_order_is_the_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _mixed_sizes(tmp_path / "ctx")
    real = checksum._content_hash

    def failing(path: str) -> bytes:
        if path.endswith(("r2.bin", "f30")):
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(checksum, "_content_hash", failing)
    with pytest.raises(PermissionError) as caught:
        ContextChecksums(root).checksum(["."])
    assert caught.value.filename.endswith("a-big/r2.bin")
    with pytest.raises(PermissionError) as caught:
        ContextChecksums(root).checksum(["b-small"])
    assert caught.value.filename.endswith("b-small/f30")
