"""A layer or chain directory that a killed build made but never got to record (killed
between the rename into place and its row) is recorded by the next build that uses it:
`cache du` and `cache prune` see it, and `cache check` is clean. The kill loops hit this
with the native snapshotter (tests/reliability/test_kills.py)."""

from __future__ import annotations

import sys

import pytest

from tests.build.conftest import Builder, write_context
from tests.support.paths import OCIBUILD

FORGET_SNAPSHOTS = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); " \
    "c.execute('DELETE FROM snapshots'); c.commit()"


@pytest.mark.parametrize("snapshotter", ["overlay", "native"])
def test_the_next_build_records_a_snapshot_a_killed_one_did_not(builder: Builder,
                                                                snapshotter: str) -> None:
    first = write_context(builder.tmp / "first", {
        "Dockerfile": "FROM busybox:latest\nRUN echo one > /one\n"}, builder.user)
    builder.build("--snapshotter", snapshotter, first)
    # what a kill between a directory's rename and its row leaves
    forget = builder.user.run([sys.executable, "-c", FORGET_SNAPSHOTS,
                               builder.root / "records.db"])
    assert forget.returncode == 0, forget.stderr
    check = builder.user.run([OCIBUILD, "--root", builder.root, "cache", "check"])
    assert check.returncode == 1 and "untracked directory" in check.stdout, check.stdout
    second = write_context(builder.tmp / "second", {
        "Dockerfile": "FROM busybox:latest\nRUN echo one > /one\nRUN echo two > /two\n"},
        builder.user)
    # over the same directories: the base's, and the first RUN's (with overlay, a build
    # for the store alone keeps a step's upper as its layer's directory)
    builder.build("--snapshotter", snapshotter, second)
    check = builder.user.run([OCIBUILD, "--root", builder.root, "cache", "check"])
    assert check.returncode == 0, check.stdout + check.stderr
