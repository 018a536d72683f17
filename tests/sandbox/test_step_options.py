"""A step's extra hosts, /dev/shm size and resource limits (the build's --add-host,
--shm-size and --ulimit), for every kind of user and in chroot isolation without
namespaces (where only the limits are possible)."""

from __future__ import annotations

import json
import resource
from pathlib import Path

from tests.sandbox.conftest import DRIVER, ROOT_USER, Sandboxer, stdout_text
from tests.sandbox.test_chroot import NO_UNSHARE
from tests.support.paths import REPO
from tests.support.users import remove_tree

SHOW = ("cat /etc/hosts; echo ---; grep ' /dev/shm ' /proc/mounts; echo ---; "
        "ulimit -Sn; ulimit -Hn; ulimit -c")
HOSTS = [["db.internal", "10.1.2.3"], ["v6.internal", "fd00::1"]]
# the hard limit of open files the builder runs with (the test users inherit it)
NOFILE_HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
NR_OPEN = int(Path("/proc/sys/fs/nr_open").read_text())


def _sections(record: dict) -> list[str]:
    assert record["error"] is None, record
    assert record["exit_code"] == 0, record
    return stdout_text(record).split("---\n")


def test_extra_hosts_shm_size_and_limits_reach_the_step(sbx: Sandboxer) -> None:
    rootfs = str(sbx.rootfs())
    given = {"rootfs": rootfs, "argv": ["sh", "-c", SHOW], "extra_hosts": HOSTS,
             "shm_size": 16 << 20, "ulimits": [["nofile", 100, 200], ["core", 0, 0]]}
    plain = {"rootfs": rootfs, "argv": ["sh", "-c", SHOW], "network": "host"}
    isolated = {**given, "network": "none", "extra_hosts": HOSTS[:1]}
    with open("/etc/hosts") as f:
        host_hosts = f.read()
    hosts, shm, limits = _sections(sbx.run_one(given))
    # the host's lines first (as without --add-host), then one line per extra host
    assert hosts.startswith(host_hosts.rstrip("\n") + "\n")
    assert hosts.endswith("10.1.2.3\tdb.internal\nfd00::1\tv6.internal\n")
    assert "size=16384k" in shm
    assert limits.split() == ["100", "200", "0"]

    hosts, shm, _ = _sections(sbx.run_one(plain))
    assert hosts == host_hosts  # unchanged without extra hosts
    assert "size=65536k" in shm  # Docker's default

    hosts, _, _ = _sections(sbx.run_one(isolated))
    assert hosts.splitlines()[0].startswith("127.0.0.1\tlocalhost")
    assert hosts.endswith("10.1.2.3\tdb.internal\n")
    assert open(f"{rootfs}/etc/hosts").read() != hosts  # the root's own is untouched


def test_a_hard_limit_above_the_builders_is_a_clear_error(sbx: Sandboxer) -> None:
    """Limits are not namespaced: root in a step's user namespace (even one that root
    started) cannot raise a hard limit above the one the builder runs with."""
    above = NOFILE_HARD + 1
    assert above <= NR_OPEN  # else no one could raise it, which this test does not show
    record = sbx.run_one({"rootfs": str(sbx.rootfs()), "argv": ["true"],
                          "ulimits": [["nofile", 100, above]]})
    assert record["error"].startswith(
        f"--ulimit nofile=100:{above}: cannot set it (Operation not permitted); the hard "
        f"limit ocibuild runs with is {NOFILE_HARD}, and raising it takes CAP_SYS_RESOURCE "
        "outside any user namespace")


def _without_unshare(*steps: dict) -> list[dict]:
    done = ROOT_USER.run([*NO_UNSHARE, *DRIVER], input=json.dumps({"steps": list(steps)}),
                         cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_chroot_without_namespaces_sets_limits_and_refuses_hosts_and_shm(
        busybox_rootfs) -> None:
    tmp = ROOT_USER.make_tempdir()
    try:
        rootfs = str(Sandboxer(ROOT_USER, tmp, busybox_rootfs).rootfs())
        base = {"rootfs": rootfs, "isolation": "chroot"}
        limits, hosts, shm = _without_unshare(
            {**base, "argv": ["sh", "-c", "ulimit -Sn; ulimit -Hn"],
             "ulimits": [["nofile", 100, NOFILE_HARD - 1]]},
            {**base, "argv": ["true"], "extra_hosts": HOSTS},
            {**base, "argv": ["true"], "shm_size": 16 << 20})
    finally:
        remove_tree(tmp)
    assert stdout_text(limits).split() == ["100", str(NOFILE_HARD - 1)]
    assert hosts["error"] == ("--add-host needs a mount namespace, which this host forbids "
                              "(chroot isolation without namespaces)")
    assert shm["error"] == ("--shm-size needs a mount namespace, which this host forbids "
                            "(chroot isolation without namespaces)")

