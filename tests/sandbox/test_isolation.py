"""A step cannot reach outside its root, and none of its processes outlive it."""

from __future__ import annotations

import json
import os
import signal
import stat
import time

from tests.sandbox.conftest import Sandboxer, processes_with_args, stdout_text
from tests.support.users import remove_tree


def test_writes_cannot_leave_the_root(sbx: Sandboxer) -> None:
    rootfs = sbx.rootfs()
    outside = sbx.path("outside")
    host = str(outside)
    script = f"""
        mkdir -p {host}                           # the same path, inside the root
        echo x > ../../../../../..{host}/dotdot
        echo x > /../../..{host}/absolute-dotdot
        echo x > {host}/absolute
        echo x > /proc/$$/root{host}/proc-root
        echo x > /proc/$$/root/../../..{host}/proc-root-dotdot
        echo x > /proc/self/root{host}/proc-self-root
        ln -s {host} /abs-link && echo x > /abs-link/abs-link
        ln -s ../../../../../..{host} /rel-link && echo x > /rel-link/rel-link
        cd /proc/$$/cwd/../../../.. && echo x > .{host}/cwd-walk
        ls {host}
    """
    (record,) = sbx.run({"rootfs": str(rootfs), "argv": ["sh", "-c", script]})
    written = {"dotdot", "absolute-dotdot", "absolute", "proc-root", "proc-root-dotdot",
               "proc-self-root", "abs-link", "rel-link", "cwd-walk"}
    assert set(stdout_text(record).split()) == written, record
    assert os.listdir(outside) == []  # the host directory is untouched
    assert set(os.listdir(f"{rootfs}{host}")) == written  # everything landed inside


def test_background_processes_die_with_the_step(sbx: Sandboxer) -> None:
    (record,) = sbx.run({"rootfs": str(sbx.busybox),
                         "argv": ["sh", "-c", "sleep 1000 & sleep 1000 & echo started"]})
    assert stdout_text(record) == "started\n" and record["exit_code"] == 0
    assert record["end"] - record["start"] < 5
    assert processes_with_args("sleep", "1000") == []


def test_cancel_kills_the_step_within_a_second(sbx: Sandboxer) -> None:
    (record,) = sbx.run({"rootfs": str(sbx.busybox),
                         "argv": ["sh", "-c", "sleep 1001 & sleep 1001"],
                         "cancel_after": 0.5})
    assert record["cancelled"] is True and record["description"] == "cancelled"
    assert record["end"] - record["cancel_time"] < 1.0
    assert processes_with_args("sleep", "1001") == []


def test_the_step_dies_with_the_builder(sbx: Sandboxer) -> None:
    proc = sbx.popen({"rootfs": str(sbx.busybox),
                      "argv": ["sh", "-c", "sleep 1002 & echo ready; sleep 1002"]})
    assert proc.stdout is not None
    try:
        first = json.loads(proc.stdout.readline())
        assert first["line"] == "ready\n"
        deadline = time.monotonic() + 2.0
        while len(processes_with_args("sleep", "1002")) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(processes_with_args("sleep", "1002")) == 2
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the builder dies without any clean-up
        proc.wait()
    deadline = time.monotonic() + 1.0
    while processes_with_args("sleep", "1002") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert processes_with_args("sleep", "1002") == []


def test_device_nodes_in_the_root_do_not_open_host_devices(busybox_rootfs) -> None:
    """Root extracts a hostile layer's device nodes as they are; a step of root's must
    not reach the host device through one (a plain-directory root, a bind mount and an
    overlay root, in both isolation modes)."""
    from tests.sandbox.conftest import ROOT_USER

    tmp = ROOT_USER.make_tempdir()
    try:
        sbx = Sandboxer(ROOT_USER, tmp, busybox_rootfs)
        rootfs = sbx.rootfs()
        os.mknod(rootfs / "zero-node", 0o666 | stat.S_IFCHR, os.makedev(1, 5))
        bound = sbx.path("bound")
        os.mknod(bound / "zero-node", 0o666 | stat.S_IFCHR, os.makedev(1, 5))
        read = ("head -c 4 /zero-node | wc -c; head -c 4 /m/zero-node | wc -c; "
                "head -c 4 /dev/zero | wc -c")
        mount = [{"type": "bind", "source": str(bound), "target": "/m"}]
        overlay = {"lower": [str(rootfs)], "upper": str(sbx.path("upper")),
                   "work": str(sbx.path("work"))}
        records = sbx.run(
            *({"rootfs": root, "argv": ["sh", "-c", read], "mounts": mount,
               "isolation": isolation}
              for root in (str(rootfs), overlay) for isolation in ("userns", "chroot")))
        for record in records:
            # the nodes cannot be opened; the sandbox's own /dev/zero still reads
            assert stdout_text(record).split() == ["0", "0", "4"], record
    finally:
        remove_tree(tmp)
