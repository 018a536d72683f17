"""The file-op server a `build` command starts before its engine loads (idspace/early.py):
a cold build uses that one and starts no other; one that fails to come up is replaced
by the build's own; a build that needs none leaves nothing of it running."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.build.conftest import Builder, copy_fixture, step_states
from tests.support.paths import OCIBUILD, REPO

# `ocibuild ARGS` as the console script runs it, telling which server the build used
WRAPPED = """\
import atexit, os, sys, time
from ocibuild.idspace import early, userns

def own_server(run):
    def started_by_the_build(self, socket_path):
        print("OWN-SERVER", file=sys.stderr, flush=True)
        return run(self, socket_path)
    return started_by_the_build

def adopted(take):
    def taken(temporary_dir):
        got = take(temporary_dir)
        if got is not None:
            print("ADOPTED", file=sys.stderr, flush=True)
        return got
    return taken

def report_unused():
    started = early._started
    if started is None:
        return
    pid = started._starter.pid
    deadline = time.monotonic() + 10
    while not os.path.exists(started.socket_path) and time.monotonic() < deadline:
        time.sleep(0.01)  # the server is up: a command that ends now must end it
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        server = f.read().strip()
    print(f"UNUSED={started.directory} {pid} {server}", file=sys.stderr, flush=True)

def reporting(start):
    def started(args, root):
        start(args, root)
        # registered after the command's own handler: runs before it stops the server
        atexit.register(report_unused)
    return started

userns.Session._run = own_server(userns.Session._run)
early.take = adopted(early.take)
early.start = reporting(early.start)
if os.environ.get("EARLY_FAILS") == "after":  # its socket announced, the server fails
    early._serve = lambda socket_path: b"failed on purpose"
if os.environ.get("EARLY_FAILS") == "before":  # before it had a socket
    early._socket_directory = lambda root: 1 / 0
sys.argv[0] = "ocibuild"
from ocibuild.cli import main
main()  # the command's end: it does not return
"""


def _build(builder: Builder, ctx: Path, *extra: str, env: dict[str, str] | None = None):
    proc = builder.user.run(
        [Path(OCIBUILD).parent / "python", "-c", WRAPPED, "--root", builder.root, "build",
         "--progress", "plain", *extra, ctx],
        env={"PYTHONPATH": str(REPO), **(env or {})}, cwd=builder.tmp)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_a_cold_build_uses_the_server_its_command_started(builder: Builder) -> None:
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    proc = _build(builder, ctx, "-t", "seed:early")
    assert "DONE" in set(step_states(proc.stderr).values())  # COPYs and RUNs ran
    assert "ADOPTED" in proc.stderr
    assert "OWN-SERVER" not in proc.stderr


def test_an_early_server_that_never_comes_up_is_replaced(builder: Builder) -> None:
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    proc = _build(builder, ctx, "-t", "seed:early", env={"EARLY_FAILS": "after"})
    assert "ADOPTED" in proc.stderr
    assert "OWN-SERVER" in proc.stderr  # and the build went on with it


def test_a_starter_that_fails_before_its_socket_is_not_adopted(builder: Builder) -> None:
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    proc = _build(builder, ctx, "-t", "seed:early", env={"EARLY_FAILS": "before"})
    assert "ADOPTED" not in proc.stderr
    assert "OWN-SERVER" in proc.stderr
    assert list((builder.root / "tmp").iterdir()) == []  # the starter left nothing


def test_a_cached_build_leaves_nothing_of_the_early_server(builder: Builder) -> None:
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    builder.build(ctx, "-t", "seed:early")
    shutil.rmtree(builder.root / "rebuilds")  # the engine answers, not the memo
    proc = _build(builder, ctx, "-t", "seed:early")
    assert set(step_states(proc.stderr).values()) == {"CACHED"}
    assert "ADOPTED" not in proc.stderr and "OWN-SERVER" not in proc.stderr
    directory, *pids = proc.stderr.rpartition("UNUSED=")[2].split("\n")[0].split()
    assert len(pids) >= 2, proc.stderr  # the starter and the server it started
    deadline = time.monotonic() + 10
    while (left := [p for p in pids if _running(int(p))]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == []
    assert not Path(directory).exists()
    assert list((builder.root / "tmp").iterdir()) == []


def _running(pid: int) -> bool:
    """Running, or dead but not reaped (a zombie left to init, which may never reap it:
    a container's first process often does not)."""
    return Path(f"/proc/{pid}").exists()


def test_a_command_that_fails_at_once_stops_its_starter_cleanly(builder: Builder) -> None:
    # the starter is forked before the command parses its options: a usage error stops
    # it while it is still starting, and that stop must neither escape into a copy of
    # the command (a second error, a traceback) nor leave its directories behind
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    for _ in range(20):
        proc = builder.user.run([OCIBUILD, "--root", builder.root, "build", "--no-such", ctx],
                                cwd=builder.tmp)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("Error:") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert list((builder.root / "tmp").iterdir()) == []


# `ocibuild ARGS` run under a subreaper that never reaps: whatever the command leaves
# behind (running, or exited and unreaped) becomes its child, as it would become the
# child of a container's first process that never reaps
SUBREAPER = """\
import ctypes, os, subprocess, sys, time
assert ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # CHILD_SUBREAPER
status = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
time.sleep(0.3)
me = os.getpid()
with open(f"/proc/{me}/task/{me}/children") as f:
    left = f.read().split()
for pid in left:  # its name and state, to tell what was left
    with open(f"/proc/{pid}/stat") as f:
        print("LEFT-ONE=" + f.read()[:60], file=sys.stderr)
print("LEFT=" + ",".join(left), file=sys.stderr)
sys.exit(status)
"""


@pytest.mark.parametrize("network", ["none", "default"])
def test_a_cold_build_leaves_no_process_for_init_to_reap(builder: Builder,
                                                         network: str) -> None:
    # with the default network each RUN has a slirp4netns, which leaves ~30 ms after
    # its step: the fork server, a subreaper, reaps it
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    proc = builder.user.run(
        [Path(OCIBUILD).parent / "python", "-c", SUBREAPER, OCIBUILD, "--root",
         builder.root, "build", "--progress", "plain", "--network", network, "--no-cache",
         ctx], cwd=builder.tmp)
    assert proc.returncode == 0, proc.stderr
    assert "DONE" in set(step_states(proc.stderr).values())  # its RUNs ran
    assert proc.stderr.rpartition("LEFT=")[2].strip() == "", proc.stderr[-600:]


def test_a_build_that_runs_no_step_leaves_no_process_either(builder: Builder) -> None:
    # the file-op server forks the sandbox's fork server as it starts, before any step
    # asks for one: a build with no RUN never takes it, and the stop must end it too
    ctx = builder.tmp / "copy-only"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nCOPY f /f\n")
    (ctx / "f").write_text("f\n")
    shutil.chown(ctx, builder.user.uid, builder.user.gid)
    for path in ctx.iterdir():
        shutil.chown(path, builder.user.uid, builder.user.gid)
    proc = builder.user.run(
        [Path(OCIBUILD).parent / "python", "-c", SUBREAPER, OCIBUILD, "--root",
         builder.root, "build", "--progress", "plain", "--no-cache", ctx], cwd=builder.tmp)
    assert proc.returncode == 0, proc.stderr
    assert "DONE" in set(step_states(proc.stderr).values())  # its COPY ran
    assert proc.stderr.rpartition("LEFT=")[2].strip() == "", proc.stderr[-600:]
