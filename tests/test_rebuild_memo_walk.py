"""The rebuild memo's walk of the context: every change anywhere in the tree changes its
signature, in the part a forked second walker takes as in the part the build walks
itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ocibuild import rebuild_memo
from tests.support.paths import REPO
from tests.support.users import User

# run in a process of its own: the walk is split only in a single-threaded process, and
# pytest's may have threads other tests left
EVERY_FILE = r"""
import json, os, sys
from pathlib import Path
from ocibuild import rebuild_memo
top, directories = Path(sys.argv[1]), int(sys.argv[2])
split = []
walk_shared = rebuild_memo._walk_shared
rebuild_memo._walk_shared = lambda *args: split.append(1) or walk_shared(*args)
meanwhile = []  # called once, while the second walker walks, when there is one
files = []
for d in range(directories):
    sub = top / f"d{d:02}" / "inner"
    sub.mkdir(parents=True)
    for f in range(3):
        path = sub / f"f{f}.txt"
        path.write_text(f"{d} {f}\n")
        files.append(path)
signatures = [rebuild_memo.tree_signature(str(top), lambda: meanwhile.append(len(split))),
              rebuild_memo.tree_signature(str(top))]
for path in files[::3]:  # one file of each directory, each in turn: same size and mtime
    st = path.stat()
    path.write_text("x" * (st.st_size - 1) + "\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    signatures.append(rebuild_memo.tree_signature(str(top)))
(top / "d00" / "inner" / "new").write_text("")
signatures.append(rebuild_memo.tree_signature(str(top)))
print(json.dumps({"signatures": signatures, "split": bool(split), "meanwhile": meanwhile}))
"""


@pytest.mark.parametrize("directories", [3, 40], ids=["one walker", "two walkers"])
def test_every_file_is_in_the_signature(tmp_path: Path, directories: int) -> None:
    proc = subprocess.run([sys.executable, "-c", EVERY_FILE, str(tmp_path / "ctx"),
                           str(directories)], capture_output=True, text=True, cwd=REPO,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["split"] == (directories > rebuild_memo._SPLIT_AT)
    assert out["meanwhile"] == ([1] if out["split"] else [])
    first, again, *changed = out["signatures"]
    assert first is not None and again == first
    # every change, in whichever walker's part, gives a signature not seen before
    assert len(set([first, *changed])) == 1 + len(changed) == 1 + directories + 1


# each walker appends its pid to a file per part it walks; one of them is slowed down
BALANCE = r"""
import json, os, sys, time
from ocibuild import rebuild_memo
top, log = sys.argv[1], sys.argv[2]
for d in range(40):
    os.makedirs(f"{top}/d{d:02}")
    with open(f"{top}/d{d:02}/f", "w") as f:
        f.write(str(d))
parent, walk = os.getpid(), rebuild_memo._walk

def walked(slow):
    def logged(directories, h):
        with open(log, "a") as f:
            f.write(f"{'parent' if os.getpid() == parent else 'child'}\n")
        if (os.getpid() == parent) == (slow == "parent"):
            time.sleep(0.02)
        walk(directories, h)
    return logged

out = {}
for slow in ("parent", "child", "neither"):
    open(log, "w").close()
    rebuild_memo._walk = walked(slow)
    signature = rebuild_memo.tree_signature(top)
    with open(log) as f:
        parts = f.read().split()
    out[slow] = [signature, parts.count("parent"), parts.count("child")]
print(json.dumps(out))
"""


def test_the_walkers_share_parts_by_speed_and_agree(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", BALANCE, str(tmp_path / "ctx"),
                           str(tmp_path / "parts.log")], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # whoever walks a part, the signature is the same: the memo's answer does not
    # depend on how busy each core was
    assert out["parent"][0] == out["child"][0] == out["neither"][0] is not None
    for slow, (_, by_parent, by_child) in out.items():
        assert by_parent + by_child == 40, (slow, by_parent, by_child)
    # the slowed walker leaves most parts to the other
    assert out["parent"][2] > 3 * out["parent"][1]
    assert out["child"][1] > 3 * out["child"][2]


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


def test_a_context_named_through_a_symbolic_link_has_a_signature(tmp_path: Path) -> None:
    # `ocibuild build ./link` builds the directory the link points to; so does the memo
    (tmp_path / "ctx" / "sub").mkdir(parents=True)
    (tmp_path / "ctx" / "sub" / "f").write_text("x\n")
    (tmp_path / "link").symlink_to("ctx")
    first = rebuild_memo.tree_signature(str(tmp_path / "link"))
    assert first is not None and rebuild_memo.tree_signature(str(tmp_path / "link")) == first
    (tmp_path / "ctx" / "sub" / "f").write_text("y\n")
    assert rebuild_memo.tree_signature(str(tmp_path / "link")) not in (None, first)


def test_numbers_too_large_to_pack_are_written_as_text(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # an inode number above 2**63 (some file systems make them) does not fit the packed
    # integers: the directory's part then holds its numbers as text, marked as such, and the
    # walk still sees every change
    (tmp_path / "f").write_text("x\n")
    packed = rebuild_memo._directory_part(str(tmp_path), "", [])

    def overflowing(layout: str, *numbers: int) -> bytes:
        raise rebuild_memo.StructError("argument out of range")

    monkeypatch.setattr(rebuild_memo, "pack", overflowing)
    as_text = rebuild_memo._directory_part(str(tmp_path), "", [])
    assert as_text != packed and as_text.endswith(b"]")
    first = rebuild_memo.tree_signature(str(tmp_path))
    assert first is not None and rebuild_memo.tree_signature(str(tmp_path)) == first
    (tmp_path / "f").write_text("y\n")
    assert rebuild_memo.tree_signature(str(tmp_path)) not in (None, first)
