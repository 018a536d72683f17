"""Steps start from one fork server per builder process: cheap, concurrent, and gone
with the builder."""

from __future__ import annotations

import json
import os
import signal
import statistics
import time

from tests.sandbox.conftest import Sandboxer, processes_with_args, stderr_text, stdout_text

WARM_UP = 3
MEASURED = 20
GOAL_MS = 30  # issue 4: a step's start cost; the bench measures ~5 ms here


def test_warm_steps_start_in_under_30_ms(sbx: Sandboxer) -> None:
    step = {"rootfs": str(sbx.busybox), "argv": ["/bin/true"]}
    records = sbx.run(*[step] * (WARM_UP + MEASURED))
    assert all(r["exit_code"] == 0 for r in records), records[0]
    times = [(r["end"] - r["start"]) * 1000 for r in records[WARM_UP:]]
    assert statistics.median(times) < GOAL_MS, sorted(times)


def test_concurrent_steps_keep_their_own_roots_secrets_and_processes(sbx: Sandboxer) -> None:
    roots = [sbx.rootfs(f"rootfs{i}") for i in range(4)]
    script = ("echo $N > /mine; sleep 0.5; cat /mine /run/secrets/s; "
              "ls /proc | grep -c '^[0-9]'")
    steps = [{"rootfs": str(root), "env": {"N": str(i)}, "argv": ["sh", "-c", script],
              "mounts": [{"type": "secret", "target": "/run/secrets/s", "data": f"s{i}\n"}]}
             for i, root in enumerate(roots)]
    started = time.monotonic()
    records = sbx.run(*steps, parallel=True)
    assert time.monotonic() - started < 10
    for i, (root, record) in enumerate(zip(roots, records, strict=True)):
        assert record["exit_code"] == 0, stderr_text(record)
        mine, secret, processes = stdout_text(record).split()
        assert (mine, secret) == (str(i), f"s{i}")
        assert int(processes) <= 4  # init, sh, ls, grep: nothing of the other steps
        assert (root / "mine").read_text() == f"{i}\n"
        assert not (root / "run" / "secrets").exists()
    # they ran at the same time, not one after another
    assert max(r["start"] for r in records) < min(r["end"] for r in records)


def test_fork_server_leaves_with_the_builder(sbx: Sandboxer) -> None:
    proc = sbx.popen({"rootfs": str(sbx.busybox),
                      "argv": ["sh", "-c", "echo ready; sleep 1005"]})
    assert proc.stdout is not None
    try:
        assert json.loads(proc.stdout.readline())["line"] == "ready\n"
        servers = [pid for pid in _children(proc.pid) if _is_fork_server(pid)]
        assert len(servers) == 1
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 2.0
    while (_alive(servers[0]) or processes_with_args("sleep", "1005")) and \
            time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(servers[0])
    assert processes_with_args("sleep", "1005") == []


def test_a_step_as_another_user_still_reports_missing_commands(sbx: Sandboxer) -> None:
    # root steps and other users' steps each switch ids before exec: both report alike
    root = str(sbx.busybox)
    as_root, as_user = sbx.run(
        {"rootfs": root, "argv": ["no-such-command"], "cwd": "/tmp"},
        {"rootfs": root, "argv": ["no-such-command"], "cwd": "/tmp", "user": "user"})
    assert as_root["exit_code"] == 127 and "command not found" in stderr_text(as_root)
    if sbx.full_ids:
        assert as_user["exit_code"] == 127 and "command not found" in stderr_text(as_user)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _is_fork_server(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"ocibuild.sandbox.zygote" in f.read()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
