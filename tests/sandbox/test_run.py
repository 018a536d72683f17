"""Running steps: who the step is, what it sees in /proc, how it ends."""

from __future__ import annotations

import os
import signal

from tests.sandbox.conftest import Sandboxer, stderr_text, stdout_text


def test_root_inside_exit_codes_and_signals(sbx: Sandboxer) -> None:
    root = str(sbx.busybox)  # read-only use: the shared copy
    uid, ok, fail, missing, missing_in_sh, killed, not_executable = sbx.run(
        {"rootfs": root, "argv": ["id", "-u"]},
        {"rootfs": root, "argv": ["sh", "-c", "exit 0"]},
        {"rootfs": root, "argv": ["sh", "-c", "exit 1"]},
        {"rootfs": root, "argv": ["no-such-command"]},
        {"rootfs": root, "argv": ["sh", "-c", "no-such-command"]},
        {"rootfs": root, "argv": ["sh", "-c", "kill -TERM $$"]},
        {"rootfs": root, "argv": ["/etc/passwd"]},
    )
    assert stdout_text(uid) == "0\n" and uid["exit_code"] == 0
    assert ok["exit_code"] == 0 and ok["signal"] is None
    assert fail["exit_code"] == 1
    assert missing["exit_code"] == 127
    assert "no-such-command" in stderr_text(missing)
    assert "command not found" in missing["description"]
    assert missing_in_sh["exit_code"] == 127
    assert killed["exit_code"] is None and killed["signal"] == signal.SIGTERM
    assert "SIGTERM" in killed["description"]
    assert not_executable["exit_code"] == 126


def test_proc_shows_only_the_steps_processes(sbx: Sandboxer) -> None:
    (record,) = sbx.run({"rootfs": str(sbx.busybox),
                         "argv": ["sh", "-c", "sleep 5 & ls /proc; kill $!"]})
    pids = sorted(int(name) for name in stdout_text(record).split() if name.isdigit())
    # init (1), the shell, the background sleep and ls: nothing of the host's
    assert pids[0] == 1 and len(pids) <= 5 and max(pids) < 20, pids


def test_env_cwd_hostname_and_user(sbx: Sandboxer) -> None:
    root = str(sbx.busybox)
    env, named, missing = sbx.run(
        {"rootfs": root, "argv": ["sh", "-c", "echo $FOO $HOME $PATH; pwd; hostname"],
         "env": {"FOO": "bar"}, "cwd": "/tmp"},
        {"rootfs": root, "argv": ["id"], "user": "user"},
        {"rootfs": root, "argv": ["id"], "user": "ghost"},
    )
    assert stdout_text(env).splitlines() == [
        "bar /root /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "/tmp",
        "ocibuild"]
    if sbx.full_ids:
        assert stdout_text(named).startswith("uid=1000(user) gid=1000(user)")
    else:
        assert "not mapped" in named["error"] and "/etc/subuid" in named["error"]
    assert "ghost" in missing["error"] and "/etc/passwd" in missing["error"]


def test_a_step_has_its_own_pid_ipc_uts_and_mount_namespaces_in_every_network_mode(
        sbx: Sandboxer) -> None:
    # without the user-mode network the supervisor unshares the PID namespace itself
    # and init makes the others: each mode must still isolate all of them
    names = ("pid", "ipc", "uts", "mnt", "net")
    script = "; ".join(f"readlink /proc/self/ns/{n}" for n in names) + "; echo $$"
    steps = [{"rootfs": str(sbx.busybox), "argv": ["sh", "-c", script], "network": mode}
             for mode in ("none", "host", "default")]
    host = {n: os.readlink(f"/proc/self/ns/{n}") for n in names}
    for mode, record in zip(("none", "host", "default"), sbx.run(*steps), strict=True):
        *seen, pid = stdout_text(record).split()
        inside = dict(zip(names, seen, strict=True))
        for name in names:
            same = inside[name] == host[name]
            assert same == (mode == "host" and name == "net"), (mode, name, inside, host)
        assert pid == "2"  # the step's shell, under init
