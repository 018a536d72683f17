"""The rebuild memo's walk of the context: every change anywhere in the tree changes its
signature, in the part a forked second walker takes as in the part the build walks
itself."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ocibuild import rebuild_memo
from tests.support.paths import REPO
from tests.support.users import User


def _tree(top: Path, directories: int) -> list[Path]:
    files = []
    for d in range(directories):
        sub = top / f"d{d:02}" / "inner"
        sub.mkdir(parents=True)
        for f in range(3):
            path = sub / f"f{f}.txt"
            path.write_text(f"{d} {f}\n")
            files.append(path)
    return files


def _rewrite_keeping_size_and_mtime(path: Path) -> None:
    st = path.stat()
    path.write_text("x" * (st.st_size - 1) + "\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


@pytest.mark.parametrize("directories", [3, 40], ids=["one walker", "two walkers"])
def test_every_file_is_in_the_signature(tmp_path: Path, directories: int,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    split = []
    walk_in_two = rebuild_memo._walk_in_two
    monkeypatch.setattr(rebuild_memo, "_walk_in_two",
                        lambda *args: split.append(1) or walk_in_two(*args))
    files = _tree(tmp_path / "ctx", directories)
    before = rebuild_memo.tree_signature(str(tmp_path / "ctx"))
    assert before is not None
    assert rebuild_memo.tree_signature(str(tmp_path / "ctx")) == before
    assert bool(split) == (directories > rebuild_memo._SPLIT_AT)
    seen = {before}
    for path in files[::3]:  # one file of each directory, each in turn
        _rewrite_keeping_size_and_mtime(path)
        after = rebuild_memo.tree_signature(str(tmp_path / "ctx"))
        assert after not in seen, path
        seen.add(after)
    (tmp_path / "ctx" / "d00" / "inner" / "new").write_text("")
    assert rebuild_memo.tree_signature(str(tmp_path / "ctx")) not in seen


UNREADABLE = r"""
import os, sys, tempfile
from pathlib import Path
from ocibuild import rebuild_memo
top = Path(tempfile.mkdtemp())
for d in range(40):
    (top / f"d{d:02}" / "inner").mkdir(parents=True)
readable = rebuild_memo.tree_signature(str(top))
os.chmod(top / "d37" / "inner", 0)  # in the half the forked walker takes
print(readable is not None, rebuild_memo.tree_signature(str(top)) is None)
os.chmod(top / "d37" / "inner", 0o700)
"""


def test_an_unreadable_directory_gives_no_signature(sub_user: User) -> None:
    # as root every directory is readable: the walk runs as the unprivileged user
    proc = sub_user.run([sys.executable, "-c", UNREADABLE], cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"]
