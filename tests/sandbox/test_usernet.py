"""ocibuild.sandbox.usernet: slirp4netns for a step's network namespace.

Everything runs inside a throwaway network namespace (tests/support/netns.py) whose
address 198.51.100.1 stands for the host's network and whose loopback stands for the
host's loopback; the helper is started by tests/sandbox/usernet_driver.py as ocib-sub,
the way the sandbox's step process starts it.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ocibuild.sandbox import usernet
from tests.support.netns import DNS_ANSWER, HOST_ADDRESS, TestNetns, network_namespace
from tests.support.users import User

PORT = 7070
DRIVER = [sys.executable, "-m", "tests.sandbox.usernet_driver"]
TUN = Path("/dev/net/tun")


def _require_usernet() -> None:
    if usernet.find_helper() is None:
        pytest.fail("slirp4netns is missing: run scripts/bootstrap.sh test")
    if TUN.stat().st_mode & 0o006 != 0o006:
        pytest.fail("/dev/net/tun is not usable by the test users: run scripts/test-users.sh")


@pytest.fixture
def netns(sub_user: User) -> Iterator[TestNetns]:
    _require_usernet()
    with network_namespace() as ns:
        yield ns


@pytest.fixture
def loopback_resolver_netns(sub_user: User) -> Iterator[TestNetns]:
    """As netns, but the namespace's resolv.conf names a loopback resolver, as on hosts
    with systemd-resolved."""
    _require_usernet()
    with network_namespace(nameserver="127.0.0.53") as ns:
        yield ns


class Driver:
    def __init__(self, ns: TestNetns, user: User, probes: list[dict[str, Any]],
                 root_prefix: list[str] | None = None, **options: Any) -> None:
        sentinel = ns.workdir / "sentinel"
        sentinel.write_text("the helper must not hold this\n")
        request = {"probes": probes, "sentinel": str(sentinel), **options}
        self.proc = ns.popen([*DRIVER, json.dumps(request)], user, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             root_prefix=root_prefix or ())
        self.result = self.read()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            pytest.fail(f"the driver failed: {self.proc.stderr.read()}")  # type: ignore[union-attr]
        return json.loads(line)

    def finish(self, command: str) -> dict[str, Any] | None:
        """Send "exit", "close" or "close SECONDS"; returns the reply to a close."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        reply = self.read() if command.startswith("close") else None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0, self.proc.stderr.read()  # type: ignore[union-attr]
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.proc.stderr.close()  # type: ignore[union-attr]
        return reply


def _wait_gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                return True  # dead; its parent has yet to reap it
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def _wait_for(condition: Any, timeout: float = 3) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def _helper_fds(pid: int) -> dict[int, os.stat_result]:
    fds = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds[int(name)] = os.stat(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            pass
    return fds


def test_step_reaches_the_network_and_dns_but_not_host_loopback(netns: TestNetns,
                                                                 sub_user: User) -> None:
    servers = netns.serve(tcp=[(HOST_ADDRESS, PORT), ("127.0.0.1", PORT)],
                          udp=[(HOST_ADDRESS, PORT), ("127.0.0.1", PORT)],
                          dns=[HOST_ADDRESS])
    probes = [
        {"routes": True},
        {"tcp": [HOST_ADDRESS, PORT], "send": "tcp-host-address"},
        # the ways slirp could map to the host's loopback: the gateway, the DNS
        # forwarder's other ports, broadcasts; and the namespace's own loopback
        {"tcp": [usernet.GATEWAY, PORT], "send": "tcp-gateway"},
        {"tcp": [usernet.NAMESERVER, PORT], "send": "tcp-nameserver"},
        {"tcp": ["127.0.0.1", PORT], "send": "tcp-own-loopback"},
        {"udp": [usernet.GATEWAY, PORT], "send": "udp-gateway"},
        {"udp": [usernet.NAMESERVER, PORT], "send": "udp-nameserver"},
        {"udp": ["10.0.2.255", PORT], "send": "udp-subnet-broadcast"},
        {"udp": ["255.255.255.255", PORT], "send": "udp-broadcast"},
        {"dns": "probe.ocibuild.test"},
        {"udp": [HOST_ADDRESS, PORT], "send": "udp-host-address"},
    ]
    driver = Driver(netns, sub_user, probes)
    result = driver.result
    assert "error" not in result, result["error"]
    routes, tcp_host, tcp_gw, tcp_ns, tcp_lo, *udp_leaks, dns, udp_host = result["probes"]

    assert routes["interfaces"] == ["eth0", "lo"]
    assert ["eth0", "00000000", "0202000A"] in routes["routes"]  # default via 10.0.2.2
    assert tcp_host == {"ok": True}
    for probe in (tcp_gw, tcp_ns, tcp_lo):
        assert not probe["ok"]
    assert dns == {"ok": True, "answer": DNS_ANSWER}
    assert udp_host == {"ok": True}
    assert result["resolv_conf"] == ("nameserver 10.0.2.3\nsearch ocibuild.test\n"
                                     "options ndots:1\n")

    def host_udp_arrived() -> bool:
        return any(r["proto"] == "udp" for r in servers.received())

    _wait_for(host_udp_arrived)
    time.sleep(0.3)  # datagrams sent before it, had any been forwarded, would be in by now
    received = servers.received()
    assert [r for r in received if r["addr"] == "127.0.0.1"] == []
    assert sorted((r["proto"], r["data"]) for r in received) == [
        ("dns", "probe.ocibuild.test"), ("tcp", "tcp-host-address"),
        ("udp", "udp-host-address")]

    # the helper holds neither the caller's inheritable descriptors nor its stdio
    helper = result["helper_pid"]
    fds = _helper_fds(helper)
    devnull = os.stat("/dev/null").st_rdev
    assert fds[0].st_rdev == devnull and fds[1].st_rdev == devnull
    inodes = {(s.st_dev, s.st_ino) for s in fds.values()}
    sentinel = os.stat(netns.workdir / "sentinel")
    assert (sentinel.st_dev, sentinel.st_ino) not in inodes
    for pipe in (driver.proc.stdin, driver.proc.stdout, driver.proc.stderr):
        st = os.fstat(pipe.fileno())  # type: ignore[union-attr]
        assert (st.st_dev, st.st_ino) not in inodes

    driver.finish("close")
    assert _wait_gone(helper)


def test_the_probes_would_see_the_gateway_reach_host_loopback(netns: TestNetns,
                                                              sub_user: User) -> None:
    """The control case: without --disable-host-loopback the gateway leads to the host's
    127.0.0.1, and the probes above would have seen it."""
    servers = netns.serve(tcp=[("127.0.0.1", PORT)])
    driver = Driver(netns, sub_user, [{"tcp": [usernet.GATEWAY, PORT], "send": "leak"}],
                    drop_options=["--disable-host-loopback"])
    assert driver.result["probes"] == [{"ok": True}]
    _wait_for(servers.received)
    assert [(r["addr"], r["data"]) for r in servers.received()] == [("127.0.0.1", "leak")]
    driver.finish("close")


def test_dns_through_a_loopback_resolver(loopback_resolver_netns: TestNetns,
                                         sub_user: User) -> None:
    """Only port 53 of the forwarder reaches the host's loopback resolver."""
    ns = loopback_resolver_netns
    servers = ns.serve(dns=["127.0.0.53"], tcp=[("127.0.0.53", PORT)])
    driver = Driver(ns, sub_user, [{"dns": "resolved.ocibuild.test"},
                                   {"tcp": [usernet.NAMESERVER, PORT], "send": "leak"}])
    dns, tcp = driver.result["probes"]
    assert dns == {"ok": True, "answer": DNS_ANSWER}
    assert not tcp["ok"]
    assert [(r["proto"], r["data"]) for r in servers.received()] == [
        ("dns", "resolved.ocibuild.test")]
    # a close with a timeout waits for the helper and reaps it
    assert driver.finish("close 5") == {"closed": True, "exists": False}


@pytest.mark.parametrize("sandboxed", [True, False])
def test_step_root_cannot_redirect_the_dns_forwarder(netns: TestNetns, sub_user: User,
                                                      sandboxed: bool) -> None:
    """The step's init pivots into the step's root in the caller's mount namespace: the
    helper must keep reading the host's resolv.conf, not the one the step wrote (which
    here names the host's loopback). --enable-sandbox is what ensures it; without it
    (the control case) the query goes where the step says."""
    servers = netns.serve(dns=[HOST_ADDRESS, "127.0.0.53"])
    newroot = netns.workdir / "step-root"
    newroot.mkdir()
    driver = Driver(netns, sub_user, [{"dns": "pivot.ocibuild.test"}],
                    pivot={"dir": str(newroot), "nameserver": "127.0.0.53"},
                    drop_options=[] if sandboxed else ["--enable-sandbox"])
    assert driver.result["probes"] == [{"ok": True, "answer": DNS_ANSWER}]
    expected = HOST_ADDRESS if sandboxed else "127.0.0.53"
    assert [(r["addr"], r["data"]) for r in servers.received()] == [
        (expected, "pivot.ocibuild.test")]
    driver.finish("close")


def test_helper_exits_with_its_caller(netns: TestNetns, sub_user: User) -> None:
    servers = netns.serve(tcp=[(HOST_ADDRESS, PORT)])
    driver = Driver(netns, sub_user, [{"tcp": [HOST_ADDRESS, PORT], "send": "hello"}])
    assert driver.result["probes"] == [{"ok": True}]
    helper = driver.result["helper_pid"]
    with open(f"/proc/{helper}/comm") as f:
        assert f.read().strip() == "slirp4netns"
    driver.finish("exit")  # the caller exits without close()
    assert _wait_gone(helper)
    _wait_for(lambda: netns.pids() <= {servers.proc.pid})
    assert netns.pids() - {servers.proc.pid} == set()  # no slirp4netns left in the namespace


def test_unusable_tun_device_is_explained(netns: TestNetns, sub_user: User) -> None:
    """/dev/net/tun at mode 0600 (this machine's default before scripts/test-users.sh):
    simulated for the driver alone by mounting such a file over it."""
    denied = netns.workdir / "tun-0600"
    denied.write_text("")
    denied.chmod(0o600)
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
              'mount --bind "$0" /dev/net/tun && exec "$@"', str(denied)]
    driver = Driver(netns, sub_user, [], root_prefix=prefix)
    assert driver.result["errno"] == errno.EACCES
    assert "chmod 0666 /dev/net/tun" in driver.result["error"]
    assert driver.proc.wait(timeout=30) == 0
    assert _wait_gone(driver.result["child_pid"])
    assert netns.pids() == set()


def test_find_helper_searches_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert usernet.find_helper(str(tmp_path)) is None
    fake = tmp_path / "slirp4netns"
    fake.write_text("#!/bin/sh\n")
    assert usernet.find_helper(f"/nonexistent:{tmp_path}") is None  # not executable
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert usernet.find_helper(f"/nonexistent:{tmp_path}") == str(fake)

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert usernet.find_helper() is None
    with pytest.raises(OSError) as raised:
        usernet.start(os.getpid())
    assert raised.value.errno == errno.ENOENT
    assert "install the slirp4netns package" in str(raised.value)


def test_refuses_the_callers_own_network_namespace() -> None:
    """A wiring mistake must not give the host's network namespace a tap interface."""
    helper = usernet.find_helper() or "/usr/bin/slirp4netns"
    with pytest.raises(OSError) as raised:
        usernet.start(os.getpid(), helper=helper)
    assert raised.value.errno == errno.EINVAL
    assert "caller's network namespace" in str(raised.value)


def test_resolv_conf_keeps_search_and_options(tmp_path: Path) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("# managed\nnameserver 127.0.0.53\nnameserver 198.51.100.9\n"
                    "search corp.example  example\noptions edns0 trust-ad\n")
    assert usernet.resolv_conf(str(host)) == (b"nameserver 10.0.2.3\n"
                                              b"search corp.example  example\n"
                                              b"options edns0 trust-ad\n")
    assert usernet.resolv_conf(str(tmp_path / "missing")) == b"nameserver 10.0.2.3\n"
    # where the sandboxed forwarder cannot read the file: the host's reachable servers
    assert usernet.resolv_conf(str(host), forwarder=False) == (b"nameserver 198.51.100.9\n"
                                                               b"search corp.example  example\n"
                                                               b"options edns0 trust-ad\n")


def test_forwarder_needs_resolv_conf_under_etc_or_run(tmp_path: Path) -> None:
    """--enable-sandbox leaves the helper only the host's /etc and /run."""
    elsewhere = tmp_path / "resolv.conf"
    elsewhere.write_text("nameserver 198.51.100.9\n")
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    assert not usernet.forwarder_usable(str(link))
    assert usernet.forwarder_usable("/etc/resolv.conf")
