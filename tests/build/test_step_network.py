"""What a RUN step's network reaches, end to end through `ocibuild build` as ocib-sub.

The builder runs inside a throwaway network namespace (tests/support/netns.py) that
stands for the host: its address 198.51.100.1 is "a non-loopback host address", its
127.0.0.1 the host's loopback. Recording servers listen on both, and a DNS server on
198.51.100.1 is the namespace's resolver. No test traffic leaves that namespace.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.build.conftest import Builder, write_context
from tests.support.netns import DNS_ANSWER, HOST_ADDRESS, Servers, TestNetns, network_namespace
from tests.support.paths import OCIBUILD

PORT = 7411


@pytest.fixture
def host_netns() -> Iterator[tuple[TestNetns, Servers]]:
    with network_namespace(nameserver=HOST_ADDRESS) as netns:
        servers = netns.serve(tcp=[(HOST_ADDRESS, PORT), ("127.0.0.1", PORT)],
                              dns=[HOST_ADDRESS])
        yield netns, servers


def probe(address: str, word: str) -> str:
    return f"echo {word} | nc -w 2 {address} {PORT}; echo {word}=$?"


def build(netns: TestNetns, builder: Builder, dockerfile: str, *args: str) -> tuple[int, str]:
    context = write_context(builder.tmp / f"ctx-{len(os.listdir(builder.tmp))}",
                            {"Dockerfile": dockerfile}, builder.user)
    done = netns.run([OCIBUILD, "--root", builder.root, "build", "--progress", "plain",
                      "--no-cache", *args, context], user=builder.user, cwd=builder.tmp)
    return done.returncode, done.stdout + done.stderr


def sent(servers: Servers, address: str) -> set[str]:
    return {r["data"].strip() for r in servers.received()
            if r["proto"] == "tcp" and r["addr"] == address}


def test_default_network_reaches_the_host_address_but_not_its_loopback(
        builder: Builder, host_netns: tuple[TestNetns, Servers]) -> None:
    netns, servers = host_netns
    code, log = build(netns, builder, f"""\
FROM busybox
RUN {probe(HOST_ADDRESS, "default-address")}; {probe("127.0.0.1", "default-loopback")}; \
    nslookup some.name.test; cat /etc/resolv.conf
RUN --network=none {probe(HOST_ADDRESS, "none-address")}; {probe("127.0.0.1", "none-loopback")}
""")
    assert code == 0, log
    assert "default-address=0" in log and "default-loopback=1" in log, log
    assert "none-address=1" in log and "none-loopback=1" in log, log
    assert sent(servers, HOST_ADDRESS) == {"default-address"}
    assert sent(servers, "127.0.0.1") == set()
    # DNS goes through the user-mode network's forwarder to the host's resolver
    assert DNS_ANSWER in log and "nameserver 10.0.2.3" in log, log
    assert any(r["proto"] == "dns" and r["data"].startswith("some.name.test")
               for r in servers.received())


def test_host_network_needs_the_entitlement_and_then_reaches_loopback(
        builder: Builder, host_netns: tuple[TestNetns, Servers]) -> None:
    netns, servers = host_netns
    dockerfile = f"FROM busybox\nRUN --network=host {probe('127.0.0.1', 'host-loopback')}\n"
    code, log = build(netns, builder, dockerfile)
    assert code == 1 and "--allow network.host" in log and "Traceback" not in log, log
    assert sent(servers, "127.0.0.1") == set()
    code, log = build(netns, builder, dockerfile, "--allow", "network.host")
    assert code == 0 and "host-loopback=0" in log, log
    assert sent(servers, "127.0.0.1") == {"host-loopback"}


def test_without_the_network_helper_a_default_step_shares_the_host_network_and_warns(
        builder: Builder, host_netns: tuple[TestNetns, Servers]) -> None:
    """Where slirp4netns is missing the build still works, on the host's network, and
    says once what to install."""
    netns, servers = host_netns
    context = write_context(builder.tmp / "ctx-fallback",
                            {"Dockerfile": f"FROM busybox\nRUN {probe('127.0.0.1', 'nohelper')}\n"
                                           f"RUN {probe('127.0.0.1', 'nohelper2')}\n"},
                            builder.user)
    # a PATH without slirp4netns (the fork server searches the builder's PATH)
    bindir = Path(OCIBUILD).parent
    done = netns.run([OCIBUILD, "--root", builder.root, "build", "--progress", "plain",
                      "--no-cache", context], user=builder.user, cwd=builder.tmp,
                     env={"PATH": f"{bindir}:/nonexistent"})
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert log.count("slirp4netns is not installed") == 1, log
    assert "nohelper=0" in log and "nohelper2=0" in log
    assert {"nohelper", "nohelper2"} <= sent(servers, "127.0.0.1")
