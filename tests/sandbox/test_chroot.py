"""--isolation chroot: for root where namespaces are forbidden (Docker's seccomp profile)."""

from __future__ import annotations

import json
import os

from tests.sandbox.conftest import (
    DRIVER,
    ROOT_USER,
    Sandboxer,
    processes_with_args,
    stdout_text,
)
from tests.support.paths import REPO, VENV_BIN
from tests.support.users import remove_tree

NO_UNSHARE = [str(VENV_BIN / "python"), "-m", "tests.sandbox.no_unshare"]


def _run_without_unshare(*steps: dict) -> list[dict]:
    done = ROOT_USER.run([*NO_UNSHARE, *DRIVER], input=json.dumps({"steps": list(steps)}),
                         cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _chroot_steps(rootfs: str) -> list[dict]:
    secret = {"type": "secret", "target": "/run/secrets/x", "data": "hunter2", "uid": 1000,
              "mode": 0o400}
    base = {"rootfs": rootfs, "isolation": "chroot"}
    return [
        {**base, "argv": ["id", "-u"]},
        {**base, "argv": ["sh", "-c", "exit 3"]},
        {**base, "argv": ["sh", "-c", "sleep 1003 & echo started"]},
        {**base, "argv": ["sh", "-c", "id -u; cat /run/secrets/x"], "mounts": [secret],
         "user": "user"},
        {**base, "argv": ["sh", "-c", "sleep 1004"], "cancel_after": 0.3},
    ]


def _check_chroot(records: list[dict], rootfs: str) -> None:
    uid, three, background, secret, cancelled = records
    assert stdout_text(uid) == "0\n"
    assert three["exit_code"] == 3
    assert stdout_text(background) == "started\n"
    assert processes_with_args("sleep", "1003") == []
    assert stdout_text(secret) == "1000\nhunter2"
    assert os.listdir(os.path.join(rootfs, "run")) == []
    assert cancelled["cancelled"] and cancelled["end"] - cancelled["cancel_time"] < 1.0
    assert processes_with_args("sleep", "1004") == []


def test_chroot_isolation_as_root(busybox_rootfs) -> None:
    tmp = ROOT_USER.make_tempdir()
    try:
        sbx = Sandboxer(ROOT_USER, tmp, busybox_rootfs)
        rootfs = str(sbx.rootfs())
        records = sbx.run(*_chroot_steps(rootfs),
                          {"rootfs": rootfs, "isolation": "chroot", "network": "none",
                           "argv": ["cat", "/proc/net/dev"]})
        _check_chroot(records[:5], rootfs)
        assert "lo:" in stdout_text(records[5]) and "eth" not in stdout_text(records[5])
    finally:
        remove_tree(tmp)


def test_chroot_isolation_where_unshare_is_forbidden(busybox_rootfs) -> None:
    tmp = ROOT_USER.make_tempdir()
    try:
        sbx = Sandboxer(ROOT_USER, tmp, busybox_rootfs)
        rootfs = str(sbx.rootfs())
        records = _run_without_unshare(
            *_chroot_steps(rootfs),
            {"rootfs": rootfs, "isolation": "chroot", "network": "none", "argv": ["true"]},
            {"rootfs": rootfs, "isolation": "chroot", "argv": ["true"],
             "mounts": [{"type": "tmpfs", "target": "/scratch"}]},
            {"rootfs": rootfs, "argv": ["true"]},  # the default isolation
        )
        _check_chroot(records[:5], rootfs)
        no_net, no_mount, userns = records[5:]
        assert "network namespace" in no_net["error"]
        assert "tmpfs mounts need a mount namespace" in no_mount["error"]
        assert "seccomp filter" in userns["error"] and "seccomp=unconfined" in userns["error"]
    finally:
        remove_tree(tmp)


def test_chroot_isolation_needs_root(busybox_rootfs) -> None:
    from tests.support.users import NOSUB_USER, User

    user = User.lookup(NOSUB_USER)
    step = {"rootfs": str(busybox_rootfs), "isolation": "chroot", "argv": ["true"]}
    done = user.run(DRIVER, input=json.dumps({"steps": [step]}), cwd=REPO)
    assert "needs root" in json.loads(done.stdout)["error"]


def test_disabled_user_namespaces_are_named_with_the_fix(busybox_rootfs) -> None:
    from tests.support.users import NOSUB_USER, User

    user = User.lookup(NOSUB_USER)
    step = {"rootfs": str(busybox_rootfs), "argv": ["true"]}
    # user.max_user_namespaces is per user namespace: 0 in an outer one forbids any inside
    script = "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\""
    done = user.run(["unshare", "-Ur", "sh", "-c", script, "sh", *DRIVER],
                    input=json.dumps({"steps": [step]}), cwd=REPO)
    assert done.returncode == 0, done.stderr
    error = json.loads(done.stdout)["error"]
    assert "user.max_user_namespaces=0" in error and "sysctl -w" in error




CONFINED_STATUS = ["CapEff:\t00000000a80425fb", "CapBnd:\t00000000a80425fb",
                   "NoNewPrivs:\t1", "Seccomp:\t2"]


def test_chroot_steps_are_confined_as_default_steps(busybox_rootfs) -> None:
    """Real root in chroot isolation gets Docker's default capabilities, no_new_privs
    and the seccomp filter too: with namespaces (where /proc shows it) and in a bare
    chroot (no /proc: mounting, which CAP_SYS_ADMIN would allow, fails)."""
    tmp = ROOT_USER.make_tempdir()
    try:
        sbx = Sandboxer(ROOT_USER, tmp, busybox_rootfs)
        rootfs = str(sbx.rootfs())
        status = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"
        # without a mount namespace a mount lands in the host's: undo it at once
        mount = ("mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo mounted && "
                 "umount /mnt/t; echo done")
        (with_ns,) = sbx.run({"rootfs": rootfs, "isolation": "chroot",
                              "argv": ["sh", "-c", status]})
        assert stdout_text(with_ns).splitlines() == CONFINED_STATUS
        (bare,) = _run_without_unshare({"rootfs": rootfs, "isolation": "chroot",
                                        "argv": ["sh", "-c", mount]})
        assert stdout_text(bare) == "done\n"
        (insecure,) = _run_without_unshare({"rootfs": rootfs, "isolation": "chroot",
                                            "security": "insecure",
                                            "argv": ["sh", "-c", mount]})
        assert stdout_text(insecure) == "mounted\ndone\n"
    finally:
        remove_tree(tmp)
