"""A build ends without deleting its step directories: they go to the store's trash,
which a later build that runs steps empties while it works, as does cache prune."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

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
    assert not left & _entries(trash), "a build that ran a step emptied the trash meanwhile"

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


def test_a_build_ends_once_the_trash_of_builds_before_the_last_is_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The low-priority deleter may get no CPU at all (a busy machine): the build then
    deletes the older builds' entries itself before it ends, so --no-cache rebuilds
    cannot pile up step directories; the last build's wait for the next build."""
    from ocibuild.cache.store import Store
    from ocibuild.snapshot import trash

    where, made = _trash_of_three_builds(tmp_path)
    starved = threading.Event()
    monkeypatch.setattr(trash.Emptying, "_run", lambda self: starved.wait(30))
    try:
        emptying = trash.empty_in_background(Store.open(tmp_path / "store"))
        assert emptying is not None and emptying.thread.is_alive()
        assert _entries(where) == made["oldest"] | made["older"] | made["last"]
        trash.finish_emptying(emptying)
        assert _entries(where) == made["last"]
    finally:
        starved.set()
