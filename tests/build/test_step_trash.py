"""A build ends without deleting its step directories: they go to the store's trash,
which keeps them up to a budget; a later build that runs steps deletes the oldest
while it works when the trash is over it, and cache prune empties it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from ocibuild.snapshot import trash as trash_mod
from tests.build.conftest import Builder, step_states, write_context
from tests.support.paths import OCIBUILD


def _entries(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()} if path.is_dir() else set()


@pytest.mark.parametrize("snapshotter", ["overlay", "native"])
def test_step_directories_go_to_the_trash_and_a_later_build_empties_it(
        builder: Builder, snapshotter: str) -> None:
    files: dict[str, str | bytes] = {f"data/f{i}.txt": f"{i}\n" for i in range(200)}
    dockerfile = ("FROM busybox:latest\nCOPY data /data\n"
                  "RUN chmod 000 /data/f1.txt && mkdir -m 000 /locked\n")
    ctx = write_context(builder.tmp / "ctx", {**files, "Dockerfile": dockerfile}, builder.user)
    first, _ = builder.build(ctx, "--snapshotter", snapshotter)
    assert "DONE" in step_states(first.stderr).values()
    steps = builder.root / "snapshots" / "steps"
    trash = builder.root / "snapshots" / "trash"
    assert _entries(steps) == set()
    left = _entries(trash)
    assert left, "the finished steps' directories are in the trash"
    du = builder.user.run([OCIBUILD, "--root", builder.root, "cache", "du"])
    assert du.returncode == 0, du.stderr
    row = next(line.split() for line in du.stdout.splitlines() if line.startswith("trash"))
    assert row[:3] == ["trash", "trash", "true"] and row[3] != "0B", du.stdout

    slow = write_context(builder.tmp / "slow", {
        "Dockerfile": "FROM busybox:latest\nRUN sleep 1 && echo slow > /slow\n"}, builder.user)
    builder.build(slow, "--snapshotter", snapshotter)
    kept = _entries(trash)
    assert {name.rpartition(".")[0] for name in kept} >= left, \
        "within its budget (by default a tenth of the filesystem) the trash is kept"
    assert all(trash_mod.entry_size(name) for name in kept
               if name.rpartition(".")[0] in left), "the next build sized them"

    builder.build(slow, "--snapshotter", snapshotter, "--no-cache",
                  env={"OCIBUILD_TRASH_KEEP": "0"})
    assert not kept & _entries(trash), "a build over the budget emptied the trash meanwhile"

    builder.build(ctx, "--snapshotter", snapshotter, "--no-cache")
    assert _entries(trash)
    proc = builder.user.run([OCIBUILD, "--root", builder.root, "cache", "prune"])
    assert proc.returncode == 0, proc.stderr
    assert _entries(trash) == set()
    assert "deleted trash" in proc.stdout
    du = builder.user.run([OCIBUILD, "--root", builder.root, "cache", "du"])
    assert not any(line.startswith("trash") for line in du.stdout.splitlines()), du.stdout


def test_a_cached_build_leaves_the_trash_alone(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {
        "Dockerfile": "FROM busybox:latest\nRUN echo one > /one\n"}, builder.user)
    builder.build(ctx)
    trash = builder.root / "snapshots" / "trash"
    before = _entries(trash)
    assert before
    started = time.monotonic()
    again, _ = builder.build(ctx)
    assert set(step_states(again.stderr).values()) == {"CACHED"}
    assert time.monotonic() - started < 5
    assert _entries(trash) == before  # no file-op server is started for it


def _trash_of_three_builds(tmp_path: Path) -> tuple[Path, dict[str, set[str]]]:
    """A store's trash holding two step directories of each of three earlier builds,
    named so that the oldest build's names sort last."""
    from ocibuild.cache.store import Store
    from ocibuild.snapshot import trash

    where = trash.trash_dir(Store.open(tmp_path / "store"))
    where.mkdir(parents=True, exist_ok=True)
    now = time.time()
    builds = {"oldest": ("900-cc", 600), "older": ("500-bb", 300), "last": ("100-aa", 60)}
    made: dict[str, set[str]] = {}
    for label, (owner, age) in builds.items():
        made[label] = set()
        for unique in ("u1", "u2"):
            entry = where / f"{owner}-{unique}"
            (entry / "sub").mkdir(parents=True)
            (entry / "sub" / "file").write_text("x\n")
            os.utime(entry, (now - age, now - age))
            made[label].add(entry.name)
    return where, made


def test_the_trash_is_deleted_oldest_build_first(tmp_path: Path) -> None:
    from ocibuild.snapshot import trash

    where, made = _trash_of_three_builds(tmp_path)
    assert [set(names) for names in trash._by_build(where)] == [
        made["oldest"], made["older"], made["last"]]


def _trim(where: Path, keep: int) -> None:
    from ocibuild.snapshot import trash

    trash.trim_in_userns(trash.TrimTrash(str(where), keep))


def _unsized(names: set[str]) -> set[str]:
    return {n if trash_mod.entry_size(n) is None else n.rpartition(".")[0] for n in names}


def test_a_trash_within_its_budget_is_kept_and_each_entry_sized_once(tmp_path: Path) -> None:
    from ocibuild.idspace.userns import tree_size

    where, made = _trash_of_three_builds(tmp_path)
    every = made["oldest"] | made["older"] | made["last"]
    sizes = {name: tree_size(where / name) for name in every}
    _trim(where, keep=sum(sizes.values()))
    found = _entries(where)
    assert _unsized(found) == every, "nothing deleted"
    assert {n.rpartition(".")[0]: trash_mod.entry_size(n) for n in found} == sizes
    renamed = {n: (where / n).stat().st_ino for n in found}
    _trim(where, keep=sum(sizes.values()))
    assert {n: (where / n).stat().st_ino for n in _entries(where)} == renamed


def test_a_trash_over_its_budget_loses_its_oldest_builds_entries(tmp_path: Path) -> None:
    from ocibuild.idspace.userns import tree_size

    where, made = _trash_of_three_builds(tmp_path)
    newer = made["older"] | made["last"]
    _trim(where, keep=sum(tree_size(where / name) for name in newer))
    assert _unsized(_entries(where)) == newer
    _trim(where, keep=0)
    assert _entries(where) == set()


def test_the_budget_is_a_tenth_of_the_filesystem_unless_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ocibuild.errors import UsageError
    from ocibuild.snapshot import trash

    fs = os.statvfs(tmp_path)
    monkeypatch.delenv(trash.KEEP_ENV, raising=False)
    assert trash.keep_bytes(tmp_path) == int(fs.f_blocks * fs.f_frsize / 10)
    monkeypatch.setenv(trash.KEEP_ENV, "512MB")
    assert trash.keep_bytes(tmp_path) == 512 << 20
    monkeypatch.setenv(trash.KEEP_ENV, "lots")
    with pytest.raises(UsageError, match="OCIBUILD_TRASH_KEEP: invalid size 'lots'"):
        trash.keep_bytes(tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (needs root)")
def test_a_nearly_full_filesystem_gets_its_trash_deleted_whatever_the_budget(
        tmp_path: Path) -> None:
    """Garbage never takes the space a build needs: while the filesystem has less than a
    tenth of its size free, the trash goes, oldest first, until it has (or is empty)."""
    import subprocess

    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", small], check=True)

    def fill_until_free(name: str, free: int) -> None:
        fs = os.statvfs(small)
        (small / name).write_bytes(b"y" * (fs.f_bavail * fs.f_frsize - free))

    try:
        where = small / "trash"
        for n, owner in enumerate(("900-cc", "500-bb", "100-aa")):
            entry = where / f"{owner}-u1"
            entry.mkdir(parents=True)
            (entry / "data").write_bytes(b"x" * (256 << 10))
            os.utime(entry, (time.time() - 600 + n * 100,) * 2)
        reserve = (8 << 20) // 10
        fill_until_free("other", reserve - (100 << 10))
        _trim(where, keep=1 << 40)
        left = _unsized(_entries(where))
        assert left == {"500-bb-u1", "100-aa-u1"}, left  # the oldest build's 256 KB was enough
        fill_until_free("more", 48 << 10)
        _trim(where, keep=1 << 40)
        assert _entries(where) == set()
    finally:
        subprocess.run(["umount", small], check=True)


def test_a_build_ends_once_the_trash_is_within_its_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The background trim may get no CPU at all (a busy machine): the build then deletes
    what is over the budget itself before it ends, so --no-cache rebuilds cannot pile
    up step directories past it."""
    from ocibuild.cache.store import Store
    from ocibuild.idspace.userns import tree_size
    from ocibuild.snapshot import trash

    where, made = _trash_of_three_builds(tmp_path)
    keep = sum(tree_size(where / name) for name in made["last"])
    monkeypatch.setenv(trash.KEEP_ENV, str(keep))
    starved = threading.Event()
    monkeypatch.setattr(trash.Emptying, "_run", lambda self: starved.wait(30))
    try:
        emptying = trash.empty_in_background(Store.open(tmp_path / "store"))
        assert emptying is not None and emptying.thread.is_alive()
        assert _entries(where) == made["oldest"] | made["older"] | made["last"]
        trash.finish_emptying(emptying)
        assert _unsized(_entries(where)) == made["last"]
    finally:
        starved.set()
