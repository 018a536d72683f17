from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.sandbox.conftest import Sandboxer, stdout_text


@pytest.fixture
def host_server() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server on the host's 127.0.0.1 that records what each client sends."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                received.append(conn.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    server.close()


def test_network_none_has_only_loopback(sbx: Sandboxer,
                                        host_server: tuple[int, list[bytes]]) -> None:
    port, received = host_server
    connect = f"echo from-$NET | nc -w 2 127.0.0.1 {port}"
    # within the namespace loopback is up: a server inside is reachable
    # the client retries until the listener is up (a loaded machine may start it late);
    # the listener's stdin is a fifo held open: at end of input busybox nc may quit unread
    inside = "mkfifo /tmp/in; nc -l -p 5555 < /tmp/in > /tmp/got & exec 3> /tmp/in; " \
             "for i in $(seq 100); do " \
             "echo ping | nc -w 1 127.0.0.1 5555 && break; sleep 0.1; done; " \
             "wait $!; exec 3>&-; cat /tmp/got; cat /proc/net/dev"
    root = str(sbx.rootfs())
    default, none, none_inside, host = sbx.run(
        {"rootfs": root, "argv": ["sh", "-c", connect], "env": {"NET": "default"}},
        {"rootfs": root, "argv": ["sh", "-c", connect], "env": {"NET": "none"},
         "network": "none"},
        {"rootfs": root, "argv": ["sh", "-c", inside], "network": "none"},
        {"rootfs": root, "argv": ["sh", "-c", connect], "env": {"NET": "host"},
         "network": "host"},
    )
    # the default network is a namespace of its own: the host's loopback is out of reach
    # (tests/build/test_step_network.py shows what it does reach)
    assert default["exit_code"] != 0
    assert none["exit_code"] != 0
    assert host["exit_code"] == 0
    assert received == [b"from-host\n"]
    lines = stdout_text(none_inside).splitlines()
    assert lines[0] == "ping"
    interfaces = [line.split(":")[0].strip() for line in lines[3:]]
    assert interfaces == ["lo"]
