"""Interrupting a build (Ctrl-C, a CI job's SIGTERM, SIGKILL) stops its steps at once,
writes no partial output, and leaves a store the next build uses as if nothing happened."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.build.conftest import Builder, step_states, write_context
from tests.support.paths import OCIBUILD

# a number no other process on the machine sleeps for: how the test finds the step
MARK = str(3_000_000 + secrets.randbelow(1_000_000))  # no other process sleeps this long
DOCKERFILE = ("FROM busybox:latest\nRUN echo kept > /kept\n"
              f"RUN echo started && sleep {MARK}\n")


def _step_processes() -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline[:2] == [b"sleep", MARK.encode()]:
            found.append(int(entry.name))
    return found


def _start_and_wait_for_step(builder: Builder, ctx: Path, *args: str) -> subprocess.Popen[str]:
    proc = builder.user.popen(
        [OCIBUILD, "--root", builder.root, "build", "--progress", "plain", *args, ctx],
        cwd=builder.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True)  # its own process group, as a shell's job is
    deadline = time.monotonic() + 60
    while not _step_processes():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    return proc


def _gone_soon(pids: list[int], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() for pid in pids):
            return True
        time.sleep(0.05)
    return False


def _the_store_still_builds(builder: Builder, ctx: Path) -> None:
    """The interrupted step runs again; the step before it comes from the cache."""
    fixed = write_context(builder.tmp / "fixed", {
        "Dockerfile": DOCKERFILE.replace(f"sleep {MARK}", "true")}, builder.user)
    proc, _ = builder.build(fixed, "-t", "after:1")
    states = step_states(proc.stderr)
    assert states["[2/3] RUN echo kept > /kept"] == "CACHED", proc.stderr
    assert states["[3/3] RUN echo started && true"] == "DONE", proc.stderr
    images = builder.user.run([OCIBUILD, "--root", builder.root, "images"])
    assert images.returncode == 0 and "after" in images.stdout, images.stderr
    prune = builder.user.run([OCIBUILD, "--root", builder.root, "cache", "prune"])
    assert prune.returncode == 0, prune.stderr
    assert list((builder.root / "snapshots" / "steps").iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_build_stops_its_steps_and_writes_no_output(
        builder: Builder, sig: signal.Signals) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": DOCKERFILE}, builder.user)
    out = builder.tmp / "image.tar"
    proc = _start_and_wait_for_step(builder, ctx, "-t", "never:1",
                                    "-o", f"type=oci,dest={out}")
    steps = _step_processes()
    started = time.monotonic()
    os.killpg(proc.pid, sig)  # what Ctrl-C (or a CI runner's cancel) sends
    stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - started < 5, "the build took too long to stop"
    assert proc.returncode == 128 + sig, (proc.returncode, stderr)
    said = "interrupted" if sig == signal.SIGINT else "terminated"
    assert f"ocibuild: {said}" in stderr and "Traceback" not in stderr, stderr
    # as BuildKit shows a step the build stopped: CANCELED, not a failure to report
    assert step_states(stderr)[f"[3/3] RUN echo started && sleep {MARK}"] == "CANCELED"
    assert "------" not in stderr
    assert _gone_soon(steps), "the running step outlived the build"
    assert not out.exists() and not list(builder.tmp.glob("image.tar*")), \
        "an interrupted build left an output file"
    images = builder.user.run([OCIBUILD, "--root", builder.root, "images"])
    assert "never" not in images.stdout
    _the_store_still_builds(builder, ctx)


def test_a_killed_builder_takes_its_steps_along_and_the_store_recovers(
        builder: Builder) -> None:
    """SIGKILL gives the builder no chance to clean up: its steps die with it (parent
    death signal), its lock goes with its descriptors, prune removes what it left."""
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": DOCKERFILE}, builder.user)
    proc = _start_and_wait_for_step(builder, ctx)
    steps = _step_processes()
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert _gone_soon(steps), "the running step outlived a killed builder"
    _the_store_still_builds(builder, ctx)
