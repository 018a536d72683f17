"""Calls ocibuild.sandbox.usernet the way a step process will, for tests/sandbox/test_usernet.

Run as an unprivileged user (inside a test network namespace) with a JSON request as
its only argument: {"probes": [...], "sentinel": path, "drop_options": [...],
"pivot": {"dir", "nameserver"}}.
It enters a new user namespace mapping the user to root, forks a child into a new
network namespace, and from the parent (user namespace, original network namespace)
starts the helper for the child's namespace (with "pivot", from a mount namespace of
its own, which then pivots into a root whose resolv.conf names "nameserver", as the
step's init does). The child then runs the probes from
inside and the driver prints one JSON line: {"ready_ms", "helper_pid", "resolv_conf",
"sentinel_inode", "probes": [...]} or {"error", "errno", "child_pid"}. Then it reads stdin: "close"
closes the helper without waiting for it; "exit" (or end of input) exits without
closing it, as a killed step process would; "close SECONDS" closes it with that timeout.
After a close it prints {"closed": true, "exists": whether /proc/PID still exists}.

Probes: {"tcp": [addr, port], "send": text}, {"udp": [addr, port], "send": text},
{"dns": name} (a query to the helper's forwarder), {"routes": true}.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from typing import Any

from ocibuild.sandbox import linux, usernet


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _probe(probe: dict[str, Any]) -> dict[str, Any]:
    try:
        if "tcp" in probe:
            with socket.create_connection(tuple(probe["tcp"]), timeout=3) as sock:
                sock.sendall(probe["send"].encode())
            return {"ok": True}
        if "udp" in probe:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                sock.sendto(probe["send"].encode(), tuple(probe["udp"]))
            return {"ok": True}
        if "dns" in probe:
            return _dns(probe["dns"])
        with open("/proc/net/route") as f:
            routes = [line.split()[:3] for line in f.read().splitlines()[1:]]
        with open("/proc/net/dev") as f:
            interfaces = [line.split(":")[0].strip() for line in f.read().splitlines()[2:]]
        return {"ok": True, "routes": routes, "interfaces": sorted(interfaces)}
    except OSError as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def _dns(name: str) -> dict[str, Any]:
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    query = b"\x4f\x43\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + question + b"\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(query, (usernet.NAMESERVER, 53))
        reply = sock.recv(512)
    return {"ok": reply[:2] == query[:2], "answer": ".".join(str(b) for b in reply[-4:])}


def _child(probes: list[dict[str, Any]], ready_w: int, go_r: int, result_w: int) -> None:
    try:
        linux.set_parent_death_signal(9)  # the driver's exit, however, ends it
        linux.unshare(linux.CLONE_NEWNET)
        os.write(ready_w, b"x")
        if os.read(go_r, 1) == b"g":
            os.write(result_w, json.dumps([_probe(p) for p in probes]).encode())
    finally:
        os._exit(0)


def _pivot_into_step_root(directory: str, nameserver: str) -> None:
    """What the step's init does after the helper started: pivot_root into a root whose
    /etc/resolv.conf the step wrote."""
    linux.mount("tmpfs", directory, "tmpfs", 0, "mode=0755")
    os.mkdir(os.path.join(directory, "etc"))
    os.mkdir(os.path.join(directory, "old"))
    _write(os.path.join(directory, "etc", "resolv.conf"), f"nameserver {nameserver}\n")
    os.chdir(directory)
    linux.pivot_root(".", "old")
    os.chdir("/")


def main() -> None:
    request = json.loads(sys.argv[1])
    # an inheritable descriptor the helper must not get
    sentinel = os.open(request["sentinel"], os.O_RDONLY)
    os.set_inheritable(sentinel, True)
    for option in request.get("drop_options", []):  # control cases: prove the probes see
        usernet._OPTIONS = tuple(o for o in usernet._OPTIONS if o != option)
    uid, gid = os.getuid(), os.getgid()
    linux.unshare(linux.CLONE_NEWUSER)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"0 {uid} 1\n")
    _write("/proc/self/gid_map", f"0 {gid} 1\n")

    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    result_r, result_w = os.pipe()
    child = os.fork()
    if child == 0:
        for fd in (ready_r, go_w, result_r):
            os.close(fd)
        _child(request["probes"], ready_w, go_r, result_w)
    for fd in (ready_w, go_r, result_w):
        os.close(fd)
    os.read(ready_r, 1)
    pivot = request.get("pivot")
    if pivot:  # like the step process: a mount namespace of its own, where init pivots
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)

    started = time.perf_counter()
    try:
        net = usernet.start(child, timeout=10)
    except OSError as e:
        print(json.dumps({"error": str(e), "errno": e.errno, "child_pid": child}), flush=True)
        os._exit(0)
    ready_ms = (time.perf_counter() - started) * 1000
    if pivot:
        _pivot_into_step_root(pivot["dir"], pivot["nameserver"])

    os.write(go_w, b"g")
    chunks = []
    while chunk := os.read(result_r, 65536):
        chunks.append(chunk)
    os.waitpid(child, 0)
    print(json.dumps({"ready_ms": ready_ms, "helper_pid": net.pid,
                      "resolv_conf": net.resolv_conf.decode(),
                      "sentinel_inode": os.fstat(sentinel).st_ino,
                      "probes": json.loads(b"".join(chunks) or b"[]")}), flush=True)
    command = sys.stdin.readline().split()
    if command[:1] == ["close"]:
        net.close(*(float(arg) for arg in command[1:]))
        print(json.dumps({"closed": True,
                          "exists": None if pivot else os.path.exists(f"/proc/{net.pid}")}),
              flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
