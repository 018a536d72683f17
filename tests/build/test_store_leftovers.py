"""What builds leave behind: nothing in $TMPDIR, and under the store only what the next
build or `cache prune` removes once its process is gone (never a live build's files)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.build.conftest import Builder, write_context
from tests.support.paths import OCIBUILD

# a sleep no other process runs (a build another test left behind neither): how the test
# finds the step
MARK = str(4_000_000 + secrets.randbelow(1_000_000))
SLOW = f"FROM busybox:latest\nRUN echo one > /one\nRUN sleep {MARK}\n"


def _private_tmp(builder: Builder, name: str) -> Path:
    path = builder.tmp / name
    path.mkdir()
    os.chown(path, builder.user.uid, builder.user.gid)
    return path


def _temporaries(root: Path) -> list[Path]:
    """What a build makes for its own use under the store (never the cache itself)."""
    found = [*root.glob("tmp/*"), *root.glob("snapshots/steps/*"), *root.glob("content/.tmp-*")]
    return sorted(found)


def _step_running(mark: str) -> bool:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if Path(entry.path, "cmdline").read_bytes().split(b"\0")[:2] == \
                        [b"sleep", mark.encode()]:
                    return True
            except OSError:
                continue
    return False


def _start_until_step(builder: Builder, ctx: Path, tmpdir: Path,
                      mark: str = MARK) -> subprocess.Popen[str]:
    proc = builder.user.popen(
        [OCIBUILD, "--root", builder.root, "build", "--progress", "plain", ctx],
        env={"TMPDIR": str(tmpdir)}, cwd=builder.tmp, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while not _step_running(mark):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("steps", ["RUN exit 3", "RUN echo a > /a\nRUN exit 3"])
def test_a_failing_build_leaves_nothing_in_tmpdir_nor_under_the_store(
        builder: Builder, steps: str) -> None:
    tmpdir = _private_tmp(builder, "tmpdir")
    ctx = write_context(builder.tmp / "ctx", {
        "Dockerfile": f"FROM busybox:latest\n{steps}\n"}, builder.user)
    proc, _ = builder.build(ctx, check=False, env={"TMPDIR": str(tmpdir)})
    assert proc.returncode == 1, proc.stderr
    assert list(tmpdir.iterdir()) == []
    assert _temporaries(builder.root) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_build_leaves_nothing_either(builder: Builder,
                                                    sig: signal.Signals) -> None:
    tmpdir = _private_tmp(builder, "tmpdir")
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": SLOW}, builder.user)
    proc = _start_until_step(builder, ctx, tmpdir)
    os.killpg(proc.pid, sig)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 128 + sig
    assert list(tmpdir.iterdir()) == []
    assert _temporaries(builder.root) == []


def test_a_killed_builds_temporaries_go_with_the_next_build_not_a_live_ones(
        builder: Builder) -> None:
    tmpdir = _private_tmp(builder, "tmpdir")
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": SLOW}, builder.user)
    killed = _start_until_step(builder, ctx, tmpdir)
    os.kill(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=30)
    left = _temporaries(builder.root)
    assert left, "the killed build left nothing to clean up (the test kills too late?)"
    assert list(tmpdir.iterdir()) == [], "temporary files belong under the store"

    other = str(int(MARK) + 1)
    live_ctx = write_context(builder.tmp / "live", {
        "Dockerfile": SLOW.replace(MARK, other)}, builder.user)
    live = _start_until_step(builder, live_ctx, tmpdir, other)
    try:
        live_temporaries = set(_temporaries(builder.root)) - set(left)
        assert live_temporaries
        quick = write_context(builder.tmp / "quick", {
            "Dockerfile": "FROM busybox:latest\nRUN echo quick\n"}, builder.user)
        builder.build(quick, env={"TMPDIR": str(tmpdir)})
        remaining = set(_temporaries(builder.root))
        assert not remaining & set(left), "the killed build's temporaries are still there"
        assert live_temporaries <= remaining, "a live build's temporaries were removed"
        assert live.poll() is None
    finally:
        os.killpg(live.pid, signal.SIGTERM)
        live.communicate(timeout=30)
    assert _temporaries(builder.root) == []


def test_cache_du_counts_temporaries_and_prune_removes_them(builder: Builder) -> None:
    tmpdir = _private_tmp(builder, "tmpdir")
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": SLOW}, builder.user)
    killed = _start_until_step(builder, ctx, tmpdir)
    os.kill(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=30)
    partial = builder.root / "content" / ".tmp-partial-blob"
    partial.write_bytes(b"x" * 300_000)  # what a kill during a layer write leaves
    os.chown(partial, builder.user.uid, builder.user.gid)
    du = builder.user.run([OCIBUILD, "--root", builder.root, "cache", "du"])
    assert du.returncode == 0, du.stderr
    line = next((r for r in du.stdout.splitlines() if r.split()[1:2] == ["temporary"]), "")
    assert line, du.stdout
    assert line.split()[3].endswith("kB") and float(line.split()[3][:-2]) >= 300, line
    prune = builder.user.run([OCIBUILD, "--root", builder.root, "cache", "prune"])
    assert prune.returncode == 0, prune.stderr
    assert _temporaries(builder.root) == []
