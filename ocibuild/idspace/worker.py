"""A build's file-op server: one process under the sandbox's id mapping that forks a
child per request, and keeps two resident children for the requests that need no fork.

Starting a helper in a user namespace (interpreter start, imports, newuidmap and
newgidmap) costs 0.1-0.3 s; a build makes several such calls per step (extracting a
layer, COPY, writing a layer, removing a step's directories). The server is started once
per build with `run_in_userns` and answers typed requests (requests.py) on a unix
socket in a private (0700) directory, each in a forked child: requests run in parallel,
a child's mount namespace or crash stays its own, and the modules the requests need are
imported once, before the first fork. A stateless request (one whose handler leaves
nothing behind in its process) goes to a resident child when that is free: it answers
one at a time without a fork, which costs a small request more than its work
(_Resident). One resident takes the layer writes (which finish even on Ctrl-C), the
other the steps' requests (COPY, WORKDIR), which so never wait behind the layers of the
steps before them.

A request is checked before anything runs: its type must be one registered by a module
of HANDLER_MODULES (the only modules a request can make the server import) and its
fields as that type declares. A refused request gets an error answer; the server goes
on serving.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import struct
import sys
from typing import TYPE_CHECKING, Any

from ocibuild.idspace import requests

if TYPE_CHECKING:  # the builder imports this module for its messages: no socket module
    from ocibuild.unixsocket import Socket

# the first byte a client sends on a connection: a request, stop, or "fork the sandbox's
# fork server for this connection" (ocibuild.sandbox.zygote.serve_from_file_op_server)
REQUEST, STOP, FORK_SERVER = b"R", b"S", b"Z"
_READ_TIMEOUT = 30.0  # seconds for a request's message to arrive after its byte
_FORK_SERVER_EXIT_WAIT = 1.0  # seconds, at a stop, for the fork servers told to leave
_HEADER = struct.Struct("!I")
# The modules whose @handler functions the server answers: the allow-list. A request
# naming a type of any other module is refused, and nothing else is ever imported for it.
HANDLER_MODULES = frozenset({
    "ocibuild.solver.fileop",
    "ocibuild.snapshot.base",
    "ocibuild.snapshot.layerdirs",
    "ocibuild.snapshot.native",
    "ocibuild.snapshot.select",
    "ocibuild.snapshot.trash",
    "ocibuild.idspace.userns",
    "ocibuild.idspace.worker",
    "ocibuild.cache.temporaries",
    "ocibuild.cache.prune",
    "ocibuild.cache.lazy_blobs",
})
# The entry points the sandbox's launcher (run_in_userns) starts here.
SERVE = "ocibuild.idspace.worker:serve"
ANSWER_ONE = "ocibuild.idspace.worker:answer_one"
# Imported before forking, so that no request pays for them (the standard library's
# too, where handlers import them only when they run: the builder imports their modules).
PRELOAD = (
    "shutil",
    "tempfile",
    "ocibuild.solver.fileop",
    "ocibuild.solver.copy_threads",
    "ocibuild.snapshot.copy_links",
    "ocibuild.snapshot.base",
    "ocibuild.snapshot.layerdirs",
    "ocibuild.snapshot.native",
    "ocibuild.snapshot.overlay",
    "ocibuild.snapshot.scan",
    "ocibuild.snapshot.select",
    "ocibuild.snapshot.trash",
    "ocibuild.idspace.userns",
    "ocibuild.oci.layer",
    "ocibuild.oci.layerwrite",
    "ocibuild.oci.extract",
    "ocibuild.oci.compression",
    "ocibuild.dockerignore",
    "ocibuild.sandbox.linux",
    "ocibuild.sandbox.users",
    "ocibuild.sandbox.zygote",
)


def run_server(socket_path: str, *, forked: bool = False) -> None:
    """Run a file-op server on `socket_path`, under the sandbox mapping in a helper
    process of its own (run_in_userns, `forked` or started), until it is stopped; a
    failure raises."""
    from ocibuild.sandbox import run_in_userns

    run_in_userns(SERVE, {"socket": socket_path, "parent": os.getpid()}, exit_at_once=True,
                  forked=forked)


def send_message(sock: Socket, value: Any) -> None:
    data = json.dumps(value).encode()
    sock.sendall(_HEADER.pack(len(data)) + data)


def receive_message(sock: Socket) -> Any:
    header = _receive_exactly(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    data = _receive_exactly(sock, size)
    if data is None:
        raise ConnectionError("the file-op server closed the connection mid-message")
    return json.loads(data)


def _receive_exactly(sock: Socket, size: int) -> bytes | None:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _received(message: Any) -> requests.Request[Any]:
    """The request `message` carries, checked; its module imported first if it is on
    the allow-list and not loaded yet (a request that comes before the preloading)."""
    name = message.get("request") if isinstance(message, dict) else None
    try:
        if isinstance(name, str):
            module = requests.wire_module(name)
            if module not in HANDLER_MODULES:
                raise requests.RequestError(f"unknown request {name!r}")
            if module not in sys.modules:
                importlib.import_module(module)
        return requests.decode(message)
    except requests.RequestError as exc:
        raise requests.RequestError(f"refused a request: {exc.message}") from None


def _read_request(conn: Socket) -> requests.Request[Any] | None:
    """(In the server.) The request on `conn`, read and checked before forking, so that
    its handler's module is imported here, once, and not by each child that answers one
    while the preloading is still under way (four children importing the same modules
    at once cost a cold build ~0.1 s of CPU on two cores). A refused request is answered
    here; None then, and for a client that went away."""
    conn.settimeout(_READ_TIMEOUT)  # the builder sends the message right after the byte
    try:
        return _received(receive_message(conn))
    except requests.RequestError as exc:
        reply = {"error": exc.message}
    except OSError:
        return None
    except Exception as exc:  # noqa: BLE001 (not JSON; a handler module that fails to load)
        reply = {"error": f"refused a request: {type(exc).__name__}: {exc}"}
    finally:
        conn.settimeout(None)
    with contextlib.suppress(OSError):
        send_message(conn, reply)
    return None


def _answer(conn: Socket, request: requests.Request[Any]) -> None:
    """(In a forked child.) Run one request and send its result or error."""
    send_message(conn, _reply(request))


def _reply(request: requests.Request[Any]) -> dict[str, Any]:
    """Run one request: {"ok": its result} or {"error": why}."""
    from ocibuild.errors import OcibuildError

    try:
        if not request.finishes_on_signal:  # the others stop with the build
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        reply: dict[str, Any] = {"ok": requests.answer(request)}
    except OcibuildError as exc:
        reply = {"error": exc.message}
    except Exception as exc:  # noqa: BLE001 (everything goes back to the caller)
        import traceback  # here: the builder imports this module for its messages

        traceback.print_exc()
        reply = {"error": f"{type(exc).__name__}: {exc}"}
    return reply


def answer_one(message: Any) -> Any:
    """(Runs under the sandbox mapping via run_in_userns, without a server.) The answer
    to one encoded request, checked as the server checks it."""
    return requests.answer(_received(message))


@requests.request_type
class Identity(requests.Request[dict[str, int]]):
    """Who a request runs as (a check that the server works and maps ids)."""


@requests.request_type
class StatelessIdentity(requests.Request[dict[str, int]]):
    """Identity as a stateless request: the resident child answers it when it is free
    (a check of the resident)."""

    stateless = True


@requests.handler(Identity)
@requests.handler(StatelessIdentity)
def identity(request: Identity | StatelessIdentity) -> dict[str, int]:
    return {"uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid()}


def _ready_for_forks() -> None:
    """Build the deferred dataclasses the preloaded modules declare (~0.7 ms each, paid
    again by every request's child otherwise) and move every object out of the garbage
    collector's reach, so that a child's collections neither scan nor copy them."""
    import gc

    from ocibuild.deferred import materialize_all

    materialize_all()
    gc.freeze()


def _fork_server_on(conn: Socket, inherited: list[Socket]) -> int:
    """Fork the sandbox's fork server, which serves the builder on `conn` (its
    connection's byte read, nothing else); its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            for sock in inherited:
                sock.close()
            from ocibuild.sandbox.zygote import serve_from_file_op_server

            serve_from_file_op_server(conn.detach())
        finally:
            os._exit(125)
    conn.close()
    return pid


class _EarlyForkServer:
    """The sandbox's fork server, forked as the server starts, before its listening
    socket, the socket module and the preloads: a fork server forked later carries them
    (~17 MB, against ~10 for one that started an interpreter of its own), and it forks
    three processes per RUN step, each paying for that size (~3 ms a step here). It
    enters its nested user namespace at once, then waits for the builder, which
    connects to it directly (fork_server_path; this server may be busy loading a
    module then), or whose FORK_SERVER connection this server passes on (`take`); it
    serves it as `_fork_server_on`'s child does. It leaves when its socket to this
    server closes first (zygote.serve_early)."""

    def __init__(self, socket_path: str) -> None:
        from ocibuild import unixsocket
        from ocibuild.sandbox.zygote import serve_early

        self.socket, theirs = unixsocket.pair()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                self.socket.close()
                serve_early(theirs, fork_server_path(socket_path))
            finally:
                os._exit(0)
        theirs.close()

    def take(self, conn: Socket) -> bool:
        """Have it serve `conn`; False when it is gone. Once only."""
        from ocibuild import unixsocket

        try:
            unixsocket.send_fds(self.socket, FORK_SERVER, [conn.fileno()])
            return True
        except OSError:
            return False
        finally:
            self.socket.close()


def fork_server_path(socket_path: str) -> str:
    """Where the early fork server of the server on `socket_path` waits for the
    builder."""
    return os.path.join(os.path.dirname(socket_path), "z")


RESIDENTS = ("r", "w")  # for the steps' requests; for layer writes (finishes_on_signal)


def resident_path(socket_path: str, for_layers: bool = False) -> str:
    """Where a resident child of the server on `socket_path` listens: the one for
    requests that finish on a signal (`for_layers`: layer writes), or the other."""
    return os.path.join(os.path.dirname(socket_path), RESIDENTS[for_layers])


class _Resident:
    """A child forked once the preloads are done, which answers stateless requests
    (Request.stateless) on a socket of its own, one at a time, in itself: a forked
    child costs a request ~3 ms of CPU (the fork, its copy-on-write faults, its exit)
    where writing a small layer or copying one file takes ~0.3 ms. The builder sends it
    one request at a time, and the rest to the server, which forks for them as before.
    It leaves after a request that failed, or that left a thread running (the next
    one falls back to the server), and when its socket to the server closes (a stop)."""

    def __init__(self, path: str, inherited: list[Socket]) -> None:
        from ocibuild import unixsocket

        self.control, theirs = unixsocket.pair()
        self.pid = os.fork()
        if self.pid == 0:
            status = 0
            try:
                for sock in [self.control, *inherited]:
                    sock.close()
                _serve_resident(path, theirs)
            except BaseException:  # noqa: BLE001 (an interrupt of the request it ran)
                status = 1
            finally:
                sys.stderr.flush()
                os._exit(status)
        theirs.close()


def _serve_resident(path: str, control: Socket) -> None:
    import socket
    import threading

    from ocibuild.sandbox import linux

    linux.set_parent_death_signal(signal.SIGKILL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # subprocess must wait()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    while True:
        if control in select.select([listener, control], [], [])[0]:
            return  # the server stops, or is gone
        conn, _ = listener.accept()
        with contextlib.closing(conn):
            if conn.recv(1) != REQUEST:
                continue
            request = _read_request(conn)
            if request is None:
                continue
            if request.stateless:
                reply = _reply(request)
            else:
                reply = {"error": f"refused a request: {request.wire_name} needs a "
                                  "process of its own"}
            # as the server's, until the next request: Ctrl-C stops a copy, not a wait
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            leaving = "ok" not in reply or threading.active_count() > 1
            if leaving:  # before the answer: the builder's next request then finds no one
                listener.close()
            with contextlib.suppress(OSError):
                send_message(conn, reply)
        if leaving:
            return


def _wait_for(pids: list[int], seconds: float) -> None:
    """Until the processes `pids` have ended (the kernel reaps them: SIGCHLD is
    ignored), for at most `seconds`: the fork servers the builder told to leave end as
    this server's children, not as orphans left to init."""
    import time

    deadline = time.monotonic() + seconds
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.001)


def serve(args: dict[str, Any]) -> None:
    """(Runs under the sandbox mapping via run_in_userns.) Answer requests on the unix
    socket args["socket"] until a stop request arrives or the builder dies."""
    from ocibuild.sandbox import linux

    linux.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != args.get("parent", os.getppid()):
        return  # the builder ended before the death signal was armed
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    # Ctrl-C or a CI runner's SIGTERM reaches the build's whole process group: the server
    # (and so, by their death signal, its children) ends only when the builder stops it
    # or dies, after the layers of the steps it reported done are written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    early: _EarlyForkServer | None = _EarlyForkServer(args["socket"])
    import socket

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(args["socket"])
    listener.listen(64)
    # The modules are imported one at a time while no request waits: the server is
    # started before the build needs it, so they are usually all loaded by the first
    # request; a request that comes sooner waits only for its own handler's module
    # (_read_request), never for the whole list.
    to_preload: list[str | None] = [*PRELOAD, None]  # None: the classes, then freeze
    fork_servers: list[int] = []
    residents: list[_Resident] = []
    while True:
        if to_preload and not select.select([listener], [], [], 0)[0]:
            module = to_preload.pop(0)
            if module is not None:
                __import__(module)
            else:
                _ready_for_forks()
                for for_layers in (False, True):
                    residents.append(_Resident(
                        resident_path(args["socket"], for_layers),
                        [listener, *(r.control for r in residents)]
                        + ([early.socket] if early else [])))
            continue
        conn, _ = listener.accept()
        command = conn.recv(1)
        if command == STOP:
            conn.close()
            if early is not None:
                early.socket.close()  # it leaves
                fork_servers.append(early.pid)
            for resident in residents:
                resident.control.close()  # it leaves too, once its request is answered
                fork_servers.append(resident.pid)
            _wait_for(fork_servers, _FORK_SERVER_EXIT_WAIT)
            break
        if command == FORK_SERVER:
            if early is not None and early.take(conn):
                fork_servers.append(early.pid)
                conn.close()
            else:
                fork_servers.append(_fork_server_on(
                    conn, [listener, *(r.control for r in residents)]))
            early = None
            continue
        if command != REQUEST:
            conn.close()
            continue
        request = _read_request(conn)
        if request is None:
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                listener.close()
                if early is not None:
                    early.socket.close()
                for resident in residents:
                    resident.control.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # subprocess must wait()
                linux.set_parent_death_signal(signal.SIGKILL)
                _answer(conn, request)
                conn.close()
            except BaseException:  # noqa: BLE001
                import traceback

                traceback.print_exc()
                status = 1
            finally:
                sys.stderr.flush()
                os._exit(status)
        conn.close()
    listener.close()
