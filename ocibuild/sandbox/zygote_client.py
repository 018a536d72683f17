"""Builder side of the fork server (zygote.py): start one lazily per isolation mode and
user, and hand it each step's descriptors.

The server is started with subprocess (fork+exec), never by forking the builder, whose
threads would be copied half-way through whatever they were doing.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ocibuild import unixsocket
from ocibuild.atomic import remove_tree
from ocibuild.errors import OcibuildError
from ocibuild.sandbox import protocol
from ocibuild.sandbox.errors import SandboxError
from ocibuild.sandbox.helper_process import helper_command
from ocibuild.sandbox.idmapping import MappingPlan, apply_mapping, plan_mapping
from ocibuild.sandbox.spec import Isolation

if TYPE_CHECKING:
    import subprocess

    from ocibuild.idspace.userns import Session

_STDERR_TAIL = 4000
_STOP_WAIT = 2.0  # seconds for a server to leave after its channel closed


def _make_staging() -> Path:
    """Mount points for every step of one server: `root` (the step's root) and `secrets`
    (a tmpfs of secret files). Steps mount on them only inside their own mount
    namespaces, so concurrent steps share them and no step pays for a fresh directory."""
    from ocibuild.cache import temporaries

    staging = temporaries.make_dir("ocibuild-steps-")
    (staging / "root").mkdir()
    (staging / "secrets").mkdir()
    return staging


class ForkServer:
    """A running fork server: its process (None: one the build's file-op server forked),
    its channel, the id mapping it was set up with and the staging directory its steps
    mount on."""

    def __init__(self, proc: subprocess.Popen[bytes] | None, channel: unixsocket.Socket,
                 plan: MappingPlan, errors: IO[bytes] | None, staging: Path,
                 session: Session | None = None) -> None:
        self.proc, self.channel, self.plan, self._errors = proc, channel, plan, errors
        self.staging, self._session = staging, session
        self._send_lock = threading.Lock()

    @property
    def usable(self) -> bool:
        """False once the file-op session that forked it has ended (and so has it)."""
        return self._session is None or not self._session.closing

    @classmethod
    def start(cls, isolation: Isolation) -> ForkServer:
        plan = plan_mapping()
        if isolation == "userns" and plan.kind != "root":
            forked = cls._fork_from_session(plan)
            if forked is not None:
                return forked
        import subprocess  # here: a rootless build's server is forked by its file-op server
        import tempfile

        mapping = plan.kind if isolation == "userns" else "none"
        parent, child = unixsocket.pair()
        errors = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(
                helper_command("ocibuild.sandbox.zygote", str(child.fileno())),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                pass_fds=(child.fileno(),), start_new_session=True, env={})
        except BaseException:
            parent.close()
            errors.close()
            raise
        finally:
            child.close()
        server = cls(proc, parent, plan, errors, _make_staging())
        try:
            server._handshake(isolation, mapping)
        except BaseException:
            server.stop()
            raise
        return server

    @classmethod
    def _fork_from_session(cls, plan: MappingPlan) -> ForkServer | None:
        """A fork server the current build's file-op server forks (sandbox.zygote:
        serve_from_file_op_server); None without a session, or where that fails (the
        caller then starts one of its own, which says why if it fails too)."""
        from ocibuild.idspace import userns

        session = userns.current()
        if session is None or session.closing:
            return None
        staging = _make_staging()
        try:
            channel = session.fork_server_channel()
        except (OcibuildError, OSError):
            remove_tree(staging)
            return None
        server = cls(None, channel, plan, None, staging, session)
        try:
            channel.sendall(protocol.encode(protocol.START, {
                "mapping": plan.kind, "staging": str(staging)}))
            message = protocol.receive(channel.fileno())
        except (OcibuildError, OSError):
            message = None
        if message is None or message[0] != protocol.READY:
            server.stop()
            return None
        session.before_stop(lambda: _retire(server))
        return server

    def _handshake(self, isolation: Isolation, mapping: str) -> None:
        fd = self.channel.fileno()
        self.channel.sendall(protocol.encode(protocol.START, {
            "isolation": isolation, "mapping": mapping, "uid": os.geteuid(),
            "gid": os.getegid(), "staging": str(self.staging)}))
        failure: str | None = None
        while (message := protocol.receive(fd)) is not None:
            kind, payload = message
            if kind == protocol.READY:
                return
            if kind == protocol.NEED_MAPPING:
                try:
                    apply_mapping(self.plan, self.proc.pid)
                except (OcibuildError, OSError) as e:
                    failure = str(e)
                    self.channel.sendall(protocol.encode(protocol.MAPPING_FAILED, None))
                else:
                    self.channel.sendall(protocol.encode(protocol.MAPPED, None))
            elif kind == protocol.ERROR and failure is None:
                failure = protocol.parse_text(payload)
        if failure is not None:
            raise SandboxError(failure)
        self.proc.wait()
        self._errors.seek(0)
        tail = self._errors.read()[-_STDERR_TAIL:].decode(errors="replace").strip()
        raise SandboxError(f"the sandbox helper ended without starting (status "
                           f"{self.proc.returncode}){': ' + tail if tail else ''}")

    def spawn(self, ctl: int, stdout: int, stderr: int) -> None:
        """Have the server fork a step process with these descriptors (it gets copies)."""
        with self._send_lock:
            unixsocket.send_fds(self.channel, protocol.SPAWN, [ctl, stdout, stderr])

    def stop(self) -> None:
        if self.proc is None:  # forked by the file-op server: wait for it to leave
            _end_and_wait(self.channel)
        self.channel.close()  # the server leaves when it reads the end of its channel
        if self.proc is not None:
            import subprocess

            try:
                self.proc.wait(_STOP_WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._errors is not None:
            self._errors.close()
        remove_tree(self.staging)


def _end_and_wait(channel: unixsocket.Socket) -> None:
    """Tell a fork server to leave (the end of its channel) and wait, up to _STOP_WAIT,
    until it has: its end of the channel then closes too."""
    import select

    try:
        channel.shutdown(unixsocket.SHUT_WR)
        deadline = time.monotonic() + _STOP_WAIT
        while (left := deadline - time.monotonic()) > 0:
            if select.select([channel], [], [], left)[0] and not channel.recv(4096):
                return
    except OSError:  # gone already
        return


def _retire(server: ForkServer) -> None:
    """(As the file-op session that forked it closes.) Stop a fork server before that
    session's server stops, so that it ends as that server's child, not as an orphan
    left to init (a container's first process often never reaps)."""
    with _lock:
        for key, running in list(_servers.items()):
            if running is server:
                del _servers[key]
    server.stop()


_ServerKey = tuple[str, int, int]
_servers: dict[_ServerKey, ForkServer] = {}
_lock = threading.Lock()  # held while a server starts: a second user waits for that one
_prestarting: set[_ServerKey] = set()
_prestart_lock = threading.Lock()


def _server_key(isolation: Isolation) -> _ServerKey:
    return (isolation, os.geteuid(), os.getegid())


def _server(key: _ServerKey, isolation: Isolation) -> ForkServer:
    with _lock:
        server = _servers.get(key)
        if server is not None and not server.usable:  # its file-op session ended
            server.stop()
            server = None
        if server is None:
            server = _servers[key] = ForkServer.start(isolation)
        return server


def prestart(isolation: Isolation = "userns") -> None:
    """Start this process's fork server for `isolation` in the background, so that the
    first step finds it up instead of paying its start (an interpreter, newuidmap,
    newgidmap: tens of milliseconds) on the build's critical path.

    Returns at once and never raises. Calling it again, from any thread, while a server
    is starting or up does nothing; a step that comes first waits for this start rather
    than beginning another. A failure (no user namespaces, a failing newuidmap, an
    isolation mode this user cannot have) is left for the first step to report, since
    that step tries again and raises the error."""
    if isolation not in ("userns", "chroot") or (isolation == "chroot" and os.geteuid()):
        return  # run_step refuses these with a clear message
    key = _server_key(isolation)
    with _prestart_lock:
        running = _servers.get(key)
        if running is not None and running.usable or key in _prestarting:
            return
        _prestarting.add(key)

    def start() -> None:
        try:
            _server(key, isolation)
        except Exception:  # the first step meets the same error, and reports it
            pass
        finally:
            with _prestart_lock:
                _prestarting.discard(key)

    try:
        threading.Thread(target=start, name="sandbox-prestart", daemon=True).start()
    except RuntimeError:  # no thread to be had: the first step starts the server itself
        with _prestart_lock:
            _prestarting.discard(key)


def spawn_step_process(isolation: Isolation, ctl: int, stdout: int,
                       stderr: int) -> ForkServer:
    """Start a step process through this builder's fork server for `isolation` (started
    on first use) and return that server (its id mapping, its staging directory).
    Raises SandboxError when the server cannot be set up (no user namespaces, a failing
    newuidmap, ...)."""
    key = _server_key(isolation)
    for attempt in range(2):
        server = _server(key, isolation)
        try:
            server.spawn(ctl, stdout, stderr)
            return server
        except OSError as e:  # the server died: start another once
            with _lock:
                if _servers.get(key) is server:
                    del _servers[key]
            server.stop()
            if attempt:
                raise SandboxError(f"the sandbox helper is not answering: {e}") from e
    raise AssertionError("unreachable")


def stop_all() -> None:
    """Stop every fork server of this process (steps in flight are not affected until
    their own control sockets close)."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()


def _forget_in_child() -> None:
    # A forked copy of the builder must not keep the servers' channels open: they end
    # when the builder's copy closes.
    global _lock, _prestart_lock
    _lock = threading.Lock()
    _prestart_lock = threading.Lock()
    _prestarting.clear()
    for server in _servers.values():
        server.channel.close()
    _servers.clear()


os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(stop_all)
