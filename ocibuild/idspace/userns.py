"""Acting on files as the sandbox's id mapping sees them.

As root the mapping is the identity, so requests are answered right here. An
unprivileged user cannot chown to its subordinate ids, read files they own with private
modes, nor remove them from the host side; it sends the same requests (requests.py) to a
process inside a user namespace with the sandbox's mapping, where it is root over every
mapped id.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ocibuild import atomic
from ocibuild.errors import OcibuildError
from ocibuild.idspace import requests
from ocibuild.idspace.requests import Request, handler, request_type

if TYPE_CHECKING:
    from ocibuild.idspace import early
    from ocibuild.unixsocket import Socket

_SERVER_START_TIMEOUT = 60.0
_REASON_WAIT = 5.0  # seconds to wait for a dead server's reason
_MAX_RESTARTS = 3


R = TypeVar("R")


class UsernsCallError(OcibuildError):
    """A request run under the sandbox mapping failed or was refused (the message is
    its error)."""


class Session:
    """A file-op server (idspace.worker), started by the first call that needs it, or
    adopted from the command that started one before its engine loaded (early.py)."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self.socket_path = ""
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_lock = threading.Lock()
        self._restarts = 0
        self._closing = False
        self._adopted = False  # the server is one the command started early
        self._before_stop: list[Callable[[], object]] = []
        # held while a resident child answers us: for layer writes, and for the rest
        self._residents = {True: threading.Lock(), False: threading.Lock()}

    def _start(self) -> threading.Thread:
        with self._start_lock:
            if self._thread is None:
                from ocibuild.cache import temporaries
                from ocibuild.idspace import early

                started = early.take(temporaries.current())
                if started is not None:  # the command began it before the engine loaded
                    self._dir, self.socket_path = Path(started.directory), started.socket_path
                    self._thread = threading.Thread(target=self._adopt, args=(started,),
                                                    name="fileop-server", daemon=True)
                else:
                    # 0700: ours alone; a socket path has at most 107 bytes
                    self._dir = temporaries.make_dir("ocib-w-", max_path=100)
                    self.socket_path = str(self._dir / "s")
                    self._thread = threading.Thread(target=self._run,
                                                    args=(self.socket_path,),
                                                    name="fileop-server", daemon=True)
                self._adopted = started is not None
                self._thread.start()
            return self._thread

    def _adopt(self, started: early.EarlyServer) -> None:
        """(The server's thread, for one the command started early.) Lives as long as it
        runs; keeps why it failed, as _run does."""
        reason = started.wait()
        if reason:
            self._error = UsernsCallError(reason)

    def _run(self, socket_path: str) -> None:
        from ocibuild.idspace.worker import run_server

        try:
            run_server(socket_path)
        except BaseException as exc:  # noqa: BLE001 (reported to the next caller)
            self._error = exc

    def _connect(self) -> Socket:
        """A connection to the server; a server that ended while the build still needs
        it (killed, or failed) is started again, up to _MAX_RESTARTS times."""
        while True:
            thread = self._start()
            try:
                return self._connect_to(thread)
            except UsernsCallError:
                if not self._restart(thread):
                    raise

    def _connect_to(self, thread: threading.Thread) -> Socket:
        from ocibuild import unixsocket  # here: a cached build never connects

        deadline = time.monotonic() + _SERVER_START_TIMEOUT
        while True:
            try:
                sock = unixsocket.connect(self.socket_path)
                self._started.set()
                return sock
            except OSError as exc:
                # while its thread lives the server is starting, or ending (the thread
                # then ends soon, with the reason); a full CI run saw a connect to a
                # live server fail once: that is retried too, up to the deadline
                if not thread.is_alive() or time.monotonic() > deadline:
                    thread.join(timeout=_REASON_WAIT)
                    reason = self._error or exc.strerror or exc
                    raise UsernsCallError(
                        "the file-op server under the sandbox mapping is not running: "
                        f"{reason}") from None
                time.sleep(0.003)

    def _restart(self, ended: threading.Thread) -> bool:
        """Forget a server that ended (True), so that the next _start makes a new one;
        False while it still runs, when closing, or past the restart budget."""
        with self._start_lock:
            if self._thread is not ended:
                return True  # another caller restarted it already
            if self._adopted and not self._started.is_set() and not ended.is_alive() \
                    and not self._closing:
                # an early start that never came up: the build starts one itself, which
                # says why if it fails too
                self._thread, self._error = None, None
                if self._dir is not None:
                    atomic.remove_tree(self._dir)
                return True
            if not self._started.is_set() or ended.is_alive() or self._closing \
                    or self._restarts >= _MAX_RESTARTS:  # one that never came up says why
                return False
            self._restarts += 1
            self._thread, self._error = None, None
            self._started.clear()
            if self._dir is not None:
                atomic.remove_tree(self._dir)
            return True

    def request(self, request: Request[R]) -> R:
        """The server's answer to `request` (its error raised as UsernsCallError); a
        stateless one is sent to the server's resident child for its kind when that is
        free."""
        message = requests.encode(request)
        kind = request.finishes_on_signal
        if request.stateless and self._residents[kind].acquire(blocking=False):
            try:
                sock = self._connect_resident(kind)
                if sock is not None:
                    result: R = self._exchange_on(sock, message)
                    return result
            finally:
                self._residents[kind].release()
        result = self.exchange(message)
        return result

    def _connect_resident(self, for_layers: bool) -> Socket | None:
        """A connection to a resident child; None while it is not there (the server is
        still preloading, or it left)."""
        from ocibuild import unixsocket
        from ocibuild.idspace.worker import resident_path

        if self._thread is None or not self._started.is_set():
            return None
        try:
            return unixsocket.connect(resident_path(self.socket_path, for_layers))
        except OSError:
            return None

    def exchange(self, message: dict[str, Any]) -> Any:
        """Send one encoded request as it is; the answer's value, or its error raised."""
        return self._exchange_on(self._connect(), message)

    def _exchange_on(self, connection: Socket, message: dict[str, Any]) -> Any:
        from ocibuild.idspace.worker import REQUEST, receive_message, send_message

        with contextlib.closing(connection) as sock:
            sock.sendall(REQUEST)
            send_message(sock, message)
            reply = receive_message(sock)
        if reply is None:
            raise UsernsCallError(f"{message.get('request')}: the file-op worker died "
                                  "without an answer")
        if "error" in reply:
            raise UsernsCallError(str(reply["error"]))
        return reply["ok"]

    def warm(self) -> None:
        """Start the server now, without waiting for it (a call is coming soon)."""
        self._start()

    @property
    def closing(self) -> bool:
        """The session has ended (its server is stopped, or being stopped)."""
        return self._closing

    def fork_server_channel(self) -> Socket:
        """A connection to a sandbox's fork server under the server (zygote:
        serve_early, or serve_from_file_op_server), which reads START next: the one the
        server forked as it started, when it is still waiting, else one the server forks
        now. It ends with the server, when the session closes."""
        from ocibuild import unixsocket
        from ocibuild.idspace.worker import FORK_SERVER, fork_server_path

        self._start()
        if self.socket_path:
            with contextlib.suppress(OSError):
                return unixsocket.connect(fork_server_path(self.socket_path))
        sock = self._connect()
        try:
            sock.sendall(FORK_SERVER)
        except BaseException:
            sock.close()
            raise
        return sock

    def before_stop(self, callback: Callable[[], object]) -> None:
        """Have close() call `callback` before it stops the server: to end first what the
        server forked for the build (the sandbox's fork server), so that the server, not
        init, reaps it."""
        self._before_stop.append(callback)

    def close(self) -> None:
        """Stop the server. Nothing waits for it to exit, nor, if it was started but
        never used, for it to be up: a daemon thread stops it then."""
        self._closing = True
        for callback in self._before_stop:
            with contextlib.suppress(Exception):
                callback()
        self._before_stop.clear()
        if self._thread is None:
            return
        if self._started.is_set() or not self._thread.is_alive():
            self._stop()
            _ending.append(self._thread)
        else:
            threading.Thread(target=self._stop, name="fileop-server-stop", daemon=True).start()

    def _stop(self) -> None:
        from ocibuild.idspace.worker import STOP

        assert self._thread is not None
        if self._thread.is_alive():
            with contextlib.suppress(UsernsCallError, OSError), \
                    contextlib.closing(self._connect()) as sock:
                sock.sendall(STOP)
        if self._dir is not None:
            atomic.remove_tree(self._dir)


_session: Session | None = None
_session_users = 0
_session_lock = threading.Lock()
# The threads of stopped servers: each reaps its server (or the early starter that runs
# it) once that has exited. The process waits for them as it exits, briefly: by then
# the servers have usually long exited, and one left unreaped would be left to init,
# which in a container is often a process that never reaps.
_ending: list[threading.Thread] = []
_ENDING_WAIT = 1.0  # seconds, for all of them


def _reap_ended() -> None:
    deadline = time.monotonic() + _ENDING_WAIT
    for thread in _ending:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


atexit.register(_reap_ended)


@contextlib.contextmanager
def session() -> Iterator[Session]:
    """Route request() through one file-op server while the block runs. Blocks that
    overlap (nested, or builds in several threads) share it; the last one out stops it."""
    global _session, _session_users
    with _session_lock:
        if _session is None:
            _session = Session()
        current = _session
        _session_users += 1
    try:
        yield current
    finally:
        with _session_lock:
            _session_users -= 1
            last = _session_users == 0
            if last:
                _session = None
        if last:
            current.close()


def current() -> Session | None:
    """The session request() goes through now, if any."""
    return _session


def warm() -> None:
    """Start the current session's server in the background (no-op without one)."""
    if _session is not None:
        _session.warm()


def request(req: Request[R]) -> R:
    """Answer `req` under the sandbox mapping (its result is JSON-shaped). Inside
    session() it runs in a child of the build's file-op server (in a process of its
    own, so it may unshare a mount namespace); otherwise as root it runs right here and
    as a user in a new helper process. It is checked as on arrival everywhere."""
    current = _session
    if current is not None:
        return current.request(req)
    if os.geteuid() == 0:
        return requests.answer(requests.decode(requests.encode(req)))
    return _in_helper_process(req)


def request_isolated(req: Request[R]) -> R:
    """Like request(), but never in this process: for requests whose handler unshares a
    mount namespace or changes process state."""
    if _session is not None or os.geteuid() != 0:
        return request(req)
    return _in_helper_process(req)


def _in_helper_process(req: Request[R]) -> R:
    """The request answered in a new helper process under the mapping; its error as
    ours."""
    from ocibuild.idspace.worker import ANSWER_ONE
    from ocibuild.sandbox import SandboxError, run_in_userns

    try:
        result: R = run_in_userns(ANSWER_ONE, requests.encode(req))
        return result
    except SandboxError as exc:
        text = exc.message
        marker = "failed in the user namespace: "
        raise UsernsCallError(text.split(marker, 1)[1] if marker in text else text) from None


def can_chown() -> bool:
    """False when the sandbox maps a single id: every file then belongs to the user."""
    if os.geteuid() == 0:
        return True
    from ocibuild.sandbox.idmapping import plan_mapping

    return not plan_mapping().single


@request_type
class Chown(Request[None]):
    stateless = True
    path: str
    uid: int
    gid: int


@handler(Chown)
def _chown(request: Chown) -> None:
    os.chown(request.path, request.uid, request.gid)


def chown_as_mapped(path: Path, uid: int, gid: int) -> None:
    """chown `path` to ids `uid`/`gid` as seen inside the sandbox."""
    request(Chown(str(path), uid, gid))


@request_type
class RemoveTrees(Request[None]):
    stateless = True
    paths: tuple[str, ...]


@handler(RemoveTrees)
def _remove_trees(request: RemoveTrees) -> None:
    for path in request.paths:
        remove_local(Path(path))


def remove_tree(path: Path) -> None:
    """Remove a tree written under the sandbox mapping (subordinate ids, mode 000 dirs)."""
    remove_trees([path])


def remove_trees(paths: list[Path]) -> None:
    """remove_tree() of several trees in one request."""
    present = tuple(str(p) for p in paths if os.path.lexists(p))
    if present:
        request(RemoveTrees(present))


def tree_size(root: Path) -> int:
    """Bytes on disk of the tree at `root` (what this process may read of it)."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def remove_local(path: Path) -> None:
    """Remove `path` with this process's rights (root here, or root in the namespace,
    passes permission checks over mapped ids: mode-000 directories need no chmod)."""
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path)
    else:
        os.unlink(path)
