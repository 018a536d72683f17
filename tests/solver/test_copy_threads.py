"""A COPY's files go to copying threads (solver/copy_threads.py): the copied tree must be
the one a single thread made, an error must name the first bad entry in walk order and
leave no thread writing, and a walk far ahead of slow copies must wait (bounded memory)."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from ocibuild.solver import copy_threads
from ocibuild.solver.copy_threads import FileCopies
from ocibuild.solver.fileop import CopyError, _Copier


def _make_tree(root: Path) -> None:
    """30 directories of 70 files (more than a batch each), a nested level, a symbolic
    link, odd modes and times, and one file larger than a batch's byte budget."""
    for d in range(30):
        sub = root / f"d{d:02}"
        (sub / "inner").mkdir(parents=True)
        for f in range(70):
            p = sub / f"f{f:03}"
            p.write_bytes(f"{d}/{f}\n".encode() * (f + 1))
            p.chmod(0o640 if f % 3 else 0o755)
            os.utime(p, ns=(1_000_000_000 * d, 1_500_000_000_000_000_000 + d * 1000 + f))
        (sub / "inner" / "deep.txt").write_text(f"deep {d}\n")
        os.symlink(f"f{d:03}", sub / "link")
        os.utime(sub, ns=(0, 1_400_000_000_000_000_000 + d))
    (root / "big.bin").write_bytes(os.urandom(1 << 16) * ((copy_threads._BATCH_BYTES >> 16) + 3))


def _listing(root: Path) -> dict[str, tuple]:
    """Every entry under `root`: type and mode bits, mtime, and content or link target."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                body = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(path)
            else:
                body = ""
            out[str(path.relative_to(root))] = (st.st_mode, st.st_mtime_ns, body)
    return out


def _copy_threads_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("copy")]


def test_a_tree_copied_on_threads_keeps_every_file_mode_time_and_link(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _make_tree(src)
    _Copier(src, None, None, from_context=False).copy_tree("", dst, None)
    copied, source = _listing(dst), _listing(src)
    assert len(source) == 30 * 74 + 1
    assert copied == source  # directory times too: set after every file under them


def test_an_uncopyable_file_fails_the_copy_naming_the_first_in_walk_order(
        tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _make_tree(src)
    os.mkfifo(src / "d05" / "f050.pipe")
    os.mkfifo(src / "d25" / "f010.pipe")
    with pytest.raises(CopyError, match=r"cannot copy special file f050\.pipe"):
        _Copier(src, None, None, from_context=False).copy_tree("", dst, None)
    assert not _copy_threads_alive()  # nothing goes on writing after the error
    assert not (dst / "d29" / "inner" / "deep.txt").exists()  # the walk stopped there


def test_a_walk_ahead_of_slow_copies_waits_instead_of_queueing_everything(
        tmp_path: Path) -> None:
    st = os.lstat(tmp_path)
    release = threading.Event()
    copied: list[str] = []

    def slow_copy(src: str, dst: str, st: os.stat_result, fresh: bool) -> None:
        release.wait()
        copied.append(dst)

    added = 0
    total = 200 * copy_threads._BATCH_FILES

    def walk() -> None:
        nonlocal added
        with FileCopies(slow_copy) as files:
            for i in range(total):
                files.add(f"s{i}", f"d{i}", st, True)
                added += 1
            files.finish()

    walker = threading.Thread(target=walk)
    walker.start()
    time.sleep(0.5)
    held = added
    release.set()
    walker.join(30)
    assert not walker.is_alive()
    # running batches, waiting batches and the one being filled; nothing more
    assert held <= (copy_threads.COPY_THREADS + copy_threads._WAITING + 1) \
        * copy_threads._BATCH_FILES
    assert sorted(copied) == sorted(f"d{i}" for i in range(total))


def test_a_small_copy_starts_no_thread(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_text("a")
    seen: list[str] = []
    with FileCopies(lambda s, d, st, f: seen.append(threading.current_thread().name)) \
            as files:
        files.add(str(tmp_path / "src" / "a"), "x", os.lstat(tmp_path / "src" / "a"), True)
        files.finish()
    assert seen == [threading.current_thread().name]
