"""A step whose DONE was reported keeps its result through Ctrl-C or SIGTERM: the next
build finds it CACHED (issue 14 defect 9).

With the overlay snapshotter a finished step's layer is written in the background while
the next step runs. A signal to the build's process group (Ctrl-C in a terminal, a CI
runner cancelling the job) reached the helper that writes that layer too, so its record
was never written and the step ran again; and a second signal (Ctrl-C pressed twice)
let the builder exit before the write was done. A large random layer makes the write
last a second or more: the signals land inside it every time."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.build.conftest import Builder, step_states, write_context
from tests.support.paths import OCIBUILD

BIG = "RUN head -c 67108864 /dev/urandom > /big"  # 64 MiB that compress to no less
SLEEP = "sleep 4714"  # a step that runs until the signal stops the build
DOCKERFILE = f"FROM busybox:latest\n{BIG}\nRUN echo next && {SLEEP}\n"


def _start(builder: Builder, ctx: os.PathLike[str]) -> subprocess.Popen[str]:
    return builder.user.popen(
        [OCIBUILD, "--root", builder.root, "build", "--progress", "plain", ctx],
        cwd=builder.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)  # its own process group, as a shell's job is


def _read_until_done(proc: subprocess.Popen[str], step: str) -> list[str]:
    """The progress lines up to the one reporting `step` DONE."""
    assert proc.stderr is not None
    lines: list[str] = []
    number = ""
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        lines.append(line)
        if line.rstrip().endswith(step):
            number = line.split()[0]
        if number and line.startswith(f"{number} DONE"):
            return lines
        assert time.monotonic() < deadline, "".join(lines)
    raise AssertionError("the build ended before the step was done:\n" + "".join(lines))


@pytest.mark.parametrize("signals", [
    [signal.SIGTERM], [signal.SIGINT],
    [signal.SIGINT, signal.SIGINT],  # Ctrl-C pressed twice
    [signal.SIGTERM, signal.SIGTERM],
], ids=["SIGTERM", "SIGINT", "SIGINT-twice", "SIGTERM-twice"])
def test_a_step_reported_done_stays_cached_after_a_signal(
        builder: Builder, signals: list[signal.Signals]) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": DOCKERFILE}, builder.user)
    proc = _start(builder, ctx)
    lines = _read_until_done(proc, f"[2/3] {BIG}")
    for sig in signals:  # at once: the layer (64 MiB to compress) is being written
        os.killpg(proc.pid, sig)
        time.sleep(0.2)
    try:
        _, rest = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # not left running to confuse later tests
        raise
    log = "".join(lines) + rest
    assert proc.returncode == 128 + signals[0], log
    assert "Traceback" not in log, log
    again, _ = builder.build(write_context(builder.tmp / "again", {
        "Dockerfile": DOCKERFILE.replace(SLEEP, "true")}, builder.user))
    states = step_states(again.stderr)
    assert states[f"[2/3] {BIG}"] == "CACHED", (log, again.stderr)
    check = builder.user.run([OCIBUILD, "--root", builder.root, "cache", "check"])
    assert check.returncode == 0, check.stdout + check.stderr
