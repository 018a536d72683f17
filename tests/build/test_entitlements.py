"""Entitlements (--allow) and network modes end to end: a RUN that needs an entitlement
the build was not granted fails before any step runs; granted, it runs; the build's
--network is the mode of every RUN that does not choose one.

Reachability is checked against a TCP server of the test on 127.0.0.1 with busybox nc
(its wget crashes here). Only `none` and `host` are asserted: what `default` reaches is
the sandbox's business."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.build.conftest import Builder, image_digest, step_states, write_context
from tests.build.test_rebuild_memo import memo_answers

TOKEN = "entitlement-probe-answer"
NOT_ALLOWED_HOST = ("network.host is not allowed; pass --allow network.host to grant the "
                    "entitlement")
NOT_ALLOWED_INSECURE = ("security.insecure is not allowed; pass --allow security.insecure "
                        "to grant the entitlement")


class ProbeServer:
    """A TCP server on 127.0.0.1 that answers TOKEN to every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.connections += 1
            with conn:
                conn.sendall(TOKEN.encode() + b"\n")

    def close(self) -> None:
        # shutdown wakes the thread blocked in accept(); close alone does not
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[ProbeServer]:
    probe = ProbeServer()
    yield probe
    probe.close()


def _reaches(port: int) -> str:
    """A shell command that succeeds only if it gets TOKEN from the server."""
    return f"nc -w 2 127.0.0.1 {port} </dev/null | grep -q {TOKEN}"


def _cannot_reach(port: int) -> str:
    """A shell command that succeeds only if it cannot connect to the server."""
    return f"! nc -w 2 127.0.0.1 {port} </dev/null"


def _context(builder: Builder, dockerfile: str, name: str = "ctx") -> Path:
    return write_context(builder.tmp / name, {"Dockerfile": dockerfile}, builder.user)


def _refused(builder: Builder, ctx: Path, *args: str) -> str:
    """Build, expecting a refusal before any step: returns the last line of stderr."""
    proc, _ = builder.build(ctx, *args, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert step_states(proc.stderr) == {}, proc.stderr  # no step started, none cached
    assert "first-step" not in proc.stderr
    return proc.stderr


def test_run_network_host_without_allow_fails_before_any_step(
        builder: Builder, server: ProbeServer) -> None:
    ctx = _context(builder, "FROM busybox:latest\nRUN echo first-step > /first\n"
                   f"RUN --network=host {_reaches(server.port)}\n")
    stderr = _refused(builder, ctx)
    assert (f"ocibuild: error: Dockerfile:3:5: RUN --network=host: {NOT_ALLOWED_HOST}"
            in stderr), stderr
    assert server.connections == 0


def test_run_network_host_with_allow_reaches_the_host(
        builder: Builder, server: ProbeServer) -> None:
    ctx = _context(builder, f"FROM busybox:latest\nRUN --network=host {_reaches(server.port)}\n")
    builder.build(ctx, "--allow", "network.host")
    assert server.connections == 1


def test_build_network_none_applies_to_runs_that_do_not_choose(
        builder: Builder, server: ProbeServer) -> None:
    """RUN --network=host still reaches the server (so nc works); the others cannot."""
    ctx = _context(builder, "FROM busybox:latest\n"
                   f"RUN --network=host {_reaches(server.port)}\n"
                   f"RUN {_cannot_reach(server.port)}\n"
                   f"RUN --network=default {_cannot_reach(server.port)}\n"
                   "RUN tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /ifaces && "
                   "test \"$(cat /ifaces)\" = lo\n")
    proc, _ = builder.build(ctx, "--network=none", "--allow=network.host")
    assert list(step_states(proc.stderr).values()) == ["CACHED"] + ["DONE"] * 4, proc.stderr
    assert server.connections == 1


def test_build_network_host_reaches_the_host_and_needs_allow(
        builder: Builder, server: ProbeServer) -> None:
    ctx = _context(builder, f"FROM busybox:latest\nRUN {_reaches(server.port)}\n")
    proc, _ = builder.build(ctx, "--network", "host", check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1] == (
        f"ocibuild: error: --network=host: {NOT_ALLOWED_HOST}"), proc.stderr
    assert step_states(proc.stderr) == {}
    builder.build(ctx, "--network", "host", "--allow", "network.host")
    assert server.connections == 1


def test_run_security_insecure_needs_allow(builder: Builder) -> None:
    ctx = _context(builder, "FROM busybox:latest\nRUN echo first-step > /first\n"
                   "RUN --security=insecure echo insecure > /insecure\n")
    stderr = _refused(builder, ctx, "--allow", "network.host")  # not the one it needs
    assert (f"ocibuild: error: Dockerfile:3:5: RUN --security=insecure: "
            f"{NOT_ALLOWED_INSECURE}" in stderr), stderr
    proc, _ = builder.build(ctx, "--allow", "network.host,security.insecure")
    assert list(step_states(proc.stderr).values()) == ["CACHED", "DONE", "DONE"], proc.stderr


def test_an_unknown_entitlement_is_a_usage_error(builder: Builder) -> None:
    ctx = _context(builder, "FROM busybox:latest\nRUN true\n")
    proc, _ = builder.build(ctx, "--allow", "network.host", "--allow", "device", check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1] == (
        "ocibuild: error: --allow device: unknown entitlement "
        "(known: network.host, security.insecure)"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_python_api_allow_and_network(builder: Builder, server: ProbeServer) -> None:
    ctx = _context(builder, "FROM busybox:latest\n"
                   f"RUN --network=host {_reaches(server.port)}\n"
                   f"RUN {_cannot_reach(server.port)}\n")
    report = builder.api(ctx, allow=["network.host"], network="none")
    assert report["steps"] == 3 and report["cached"] == 1  # FROM, then both RUNs ran
    assert server.connections == 1


def test_the_rebuild_memo_names_allow_and_network(builder: Builder) -> None:
    ctx = _context(builder, "FROM busybox:latest\nRUN --network=host true\n"
                   "RUN echo built > /built\n")
    isolated = (ctx, "--allow", "network.host", "--network=none")
    first, _ = builder.build(*isolated)
    assert memo_answers(builder, *isolated)
    answered, _ = builder.build(*isolated)
    assert image_digest(answered.stderr) == image_digest(first.stderr)
    shared = (ctx, "--allow=network.host")
    assert not memo_answers(builder, *shared)
    other, _ = builder.build(*shared)  # the last RUN has another network mode: it runs
    assert step_states(other.stderr)["[3/3] RUN echo built > /built"] == "DONE"
    assert memo_answers(builder, *shared)
    assert not memo_answers(builder, ctx)
    _refused(builder, ctx)
