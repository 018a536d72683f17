"""Throwaway network namespaces for network tests, so that no test traffic leaves the
machine or reaches the real host's services.

`network_namespace()` (as root) creates `ocib-test-<random>` with `lo` up and an
interface ocib0 holding 198.51.100.1/24 (TEST-NET-2, a documentation range) with the
default route through it: a dummy interface where the kernel has the dummy driver,
otherwise one end of a veth pair whose other end is in the same namespace. Packets to
other addresses go nowhere. Its /etc/resolv.conf (what `ip netns exec` shows processes
inside) names a nameserver of the test's choosing, and `serve()` starts a recording
server inside it (this module run as `python -m tests.support.netns serve ...`). The
context manager kills everything left in the namespace and deletes it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.paths import REPO
from tests.support.users import User

HOST_ADDRESS = "198.51.100.1"  # the namespace's own address (TEST-NET-2)
GATEWAY = "198.51.100.254"  # nothing answers there
DNS_ANSWER = "198.51.100.53"  # what the recording DNS server answers for every A query
_PYTHON = sys.executable
_NETNS_ETC = Path("/etc/netns")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Servers:
    """Recording servers running inside a test namespace."""

    proc: subprocess.Popen[str]
    log: Path

    def received(self) -> list[dict[str, Any]]:
        """One record per TCP connection, UDP datagram or DNS query, in arrival order:
        {"proto", "addr", "port", "data"} (DNS: "data" is the queried name)."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@dataclass
class TestNetns:
    name: str
    workdir: Path
    servers: list[Servers] = field(default_factory=list)

    __test__ = False  # not a pytest test class

    def exec_argv(self, cmd: Sequence[str | os.PathLike[str]], user: User | None = None,
                  env: dict[str, str] | None = None,
                  root_prefix: Sequence[str] = ()) -> list[str]:
        """`cmd` run inside the namespace, as `user` (root if None), with `user`'s clean
        environment; `root_prefix` runs first, as root (it must exec its arguments)."""
        argv = ["ip", "netns", "exec", self.name, *root_prefix]
        if user is not None:
            argv += ["runuser", "-u", user.name, "--", "env", "-i",
                     *(f"{k}={v}" for k, v in user.env(env).items())]
        return argv + [str(c) for c in cmd]

    def run(self, cmd: Sequence[str | os.PathLike[str]], user: User | None = None,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 60)
        kwargs.setdefault("cwd", REPO)
        return subprocess.run(self.exec_argv(cmd, user, kwargs.pop("env", None),
                                             kwargs.pop("root_prefix", ())), **kwargs)

    def popen(self, cmd: Sequence[str | os.PathLike[str]], user: User | None = None,
              **kwargs: Any) -> subprocess.Popen[str]:
        kwargs.setdefault("text", True)
        kwargs.setdefault("cwd", REPO)
        return subprocess.Popen(self.exec_argv(cmd, user, kwargs.pop("env", None),
                                               kwargs.pop("root_prefix", ())), **kwargs)

    def serve(self, *, tcp: Sequence[tuple[str, int]] = (), udp: Sequence[tuple[str, int]] = (),
              dns: Sequence[str] = ()) -> Servers:
        """Start recording servers inside the namespace (as root): TCP and UDP on the
        given (address, port) pairs, DNS on port 53 of the given addresses. Returns
        once all are bound."""
        log = self.workdir / f"received-{len(self.servers)}.jsonl"
        args = ["serve", "--log", str(log)]
        for proto, pairs in (("--tcp", tcp), ("--udp", udp)):
            for addr, port in pairs:
                args += [proto, f"{addr}:{port}"]
        for addr in dns:
            args += ["--dns", addr]
        proc = self.popen([_PYTHON, "-m", "tests.support.netns", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        servers = Servers(proc, log)
        self.servers.append(servers)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            servers.stop()
            raise RuntimeError(f"test servers did not start: {line}{proc.stderr.read()}")  # type: ignore[union-attr]
        return servers

    def pids(self) -> set[int]:
        done = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True,
                              text=True, check=True)
        return {int(p) for p in done.stdout.split()}


def _add_interface(name: str) -> None:
    try:
        _ip("-n", name, "link", "add", "ocib0", "type", "dummy")
    except subprocess.CalledProcessError:
        _ip("-n", name, "link", "add", "ocib0", "type", "veth", "peer", "name", "ocib1")
        _ip("-n", name, "link", "set", "ocib1", "up")
    _ip("-n", name, "addr", "add", f"{HOST_ADDRESS}/24", "dev", "ocib0")
    _ip("-n", name, "link", "set", "ocib0", "up")
    _ip("-n", name, "route", "add", "default", "via", GATEWAY, "dev", "ocib0")


@contextmanager
def network_namespace(nameserver: str = HOST_ADDRESS) -> Iterator[TestNetns]:
    """A fresh network namespace (see the module's docstring) whose /etc/resolv.conf
    names `nameserver`. Needs root."""
    name = f"ocib-test-{secrets.token_hex(4)}"
    etc = _NETNS_ETC / name
    workdir = Path(f"/tmp/{name}")
    workdir.mkdir(mode=0o755)
    _ip("netns", "add", name)
    netns = TestNetns(name, workdir)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _add_interface(name)
        etc.mkdir(parents=True)
        (etc / "resolv.conf").write_text(f"nameserver {nameserver}\n"
                                         "search ocibuild.test\noptions ndots:1\n")
        yield netns
    finally:
        for servers in netns.servers:
            servers.stop()
        for pid in netns.pids():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(etc, ignore_errors=True)
        try:
            _NETNS_ETC.rmdir()  # only if no other namespace uses it
        except OSError:
            pass
        shutil.rmtree(workdir, ignore_errors=True)


# ---- the recording server (runs inside the namespace) -----------------------------


def _record(log: Any, lock: threading.Lock, **entry: Any) -> None:
    with lock:
        log.write(json.dumps(entry) + "\n")
        log.flush()


def _serve_tcp(sock: socket.socket, log: Any, lock: threading.Lock) -> None:
    addr, port = sock.getsockname()[:2]
    while True:
        conn, _ = sock.accept()
        with conn:
            conn.settimeout(5)
            chunks = []
            try:
                while chunk := conn.recv(4096):
                    chunks.append(chunk)
            except OSError:
                pass
            data = b"".join(chunks).decode(errors="replace")
            _record(log, lock, proto="tcp", addr=addr, port=port, data=data)


def _serve_udp(sock: socket.socket, log: Any, lock: threading.Lock) -> None:
    addr, port = sock.getsockname()[:2]
    while True:
        data, _ = sock.recvfrom(4096)
        _record(log, lock, proto="udp", addr=addr, port=port,
                data=data.decode(errors="replace"))


def _dns_name(query: bytes) -> tuple[str, int]:
    """The queried name and where the question ends."""
    labels, i = [], 12
    while query[i]:
        labels.append(query[i + 1:i + 1 + query[i]].decode(errors="replace"))
        i += 1 + query[i]
    return ".".join(labels), i + 5  # the root label, then QTYPE and QCLASS


def _serve_dns(sock: socket.socket, log: Any, lock: threading.Lock) -> None:
    addr = sock.getsockname()[0]
    answer_ip = bytes(int(b) for b in DNS_ANSWER.split("."))
    while True:
        query, peer = sock.recvfrom(512)
        try:
            name, end = _dns_name(query)
        except IndexError:
            continue
        _record(log, lock, proto="dns", addr=addr, port=53, data=name)
        header = query[:2] + b"\x81\x80" + b"\x00\x01\x00\x01\x00\x00\x00\x00"
        answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + answer_ip
        sock.sendto(header + query[12:end] + answer, peer)


def _split(pair: str) -> tuple[str, int]:
    addr, port = pair.rsplit(":", 1)
    return addr, int(port)


def _serve_main(argv: list[str]) -> None:
    log_path = argv[argv.index("--log") + 1]
    sockets: list[tuple[Any, socket.socket]] = []
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag == "--tcp":
            sockets.append((_serve_tcp, socket.create_server(_split(value))))
        elif flag == "--udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(_split(value))
            sockets.append((_serve_udp, sock))
        elif flag == "--dns":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((value, 53))
            sockets.append((_serve_dns, sock))
    lock = threading.Lock()
    with open(log_path, "a") as log:
        for target, sock in sockets:
            threading.Thread(target=target, args=(sock, log, lock), daemon=True).start()
        print("ready", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        _serve_main(sys.argv[2:])
