"""The file-op server started before the build knows it needs one.

A build learns whether any step runs only when its cache keys are looked up, about
0.1 s into the command. Started then, the file-op server (an interpreter in a user
namespace, newuidmap and newgidmap, its modules) came up about 60 ms later on two busy
cores, and the first COPY or layer write of a cold build waited for it.

So a `build` command that the rebuild memo did not answer forks a starter at once, while
it is still single-threaded and small: before the engine's modules load (only the
standard library both need is loaded first), without an interpreter start. The starter
loads what else it needs itself, on another core and outside the command's GIL: it
makes the server's socket directory in a temporary directory of its own in the store
(ocibuild.cache.temporaries, locked while it lives), tells the command where through a
pipe, and runs the server as Session would (run_in_userns), but as a fork of itself: no
interpreter to start, and the modules the starter loaded are the server's. The build's
first session adopts it (userns.Session). A build that runs no step never connects: as
the command exits it stops the starter, which kills and reaps the server and removes
its directories. Should the command die instead, parent-death signals end the starter
and the server, and the next build in the store removes what they left (their
directory's lock went with them).
"""

from __future__ import annotations

import atexit
import os

from ocibuild.forked_call import ForkedCall, single_threaded

TYPE_CHECKING = False  # typing: ~3 ms before the starter is forked
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

_SOCKET_PATH_MAX = 100  # a unix socket's path has at most 107 bytes
_STOP_SIGNAL = 12  # SIGUSR2
_STOP_WAIT = 2.0  # seconds for a stopped starter to end its server and exit


class EarlyServer:
    """A server started by start(): the store it serves, and the starter that runs it."""

    __slots__ = ("root", "_announced", "_where", "_starter")

    def __init__(self, root: str, announced: int, starter: ForkedCall) -> None:
        self.root, self._announced, self._starter = root, announced, starter
        self._where: str | None = None

    @property
    def directory(self) -> str:
        """The socket's directory as the starter announced it, waiting for the
        announcement; "" when the starter ended without one."""
        if self._where is None:
            with open(self._announced, "rb") as pipe:  # read to the starter's close
                self._announced = -1
                self._where = pipe.read().decode(errors="surrogateescape")
        return self._where

    @property
    def socket_path(self) -> str:
        return _socket_path(self.directory) if self.directory else ""

    def wait(self) -> str:
        """Block until the server has ended; why it failed, or "" when it was stopped."""
        return self._starter.result().decode(errors="replace")

    def stop(self) -> None:
        """End the server and its starter now, and reap them (a starter that does not
        end within _STOP_WAIT is killed; its server then dies by its death signal)."""
        if self._starter.pid:  # not reaped yet (kill(0) would signal our whole group)
            try:
                os.kill(self._starter.pid, _STOP_SIGNAL)
            except ProcessLookupError:
                pass
        self._starter.result(timeout=_STOP_WAIT)
        if self._announced >= 0:
            os.close(self._announced)
            self._announced = -1


_started: EarlyServer | None = None


def start(args: Sequence[str], root: str | None) -> None:
    """Start the file-op server in the background for the `ocibuild ARGS` build command,
    whose store is at `root` (None: read from ARGS); does nothing for any other command,
    in a process with threads, or where anything is in the way (the build then starts
    its server itself, as before)."""
    global _started
    if _started is not None or not single_threaded():
        return
    root = root or _store_root(args)
    if root is None:
        return
    root = os.path.abspath(root)
    # The standard library the starter loads and the command loads anyway: loaded once,
    # here, rather than by both (~15 ms of CPU on cores the two already fill).
    import dataclasses  # noqa: F401
    import json  # noqa: F401
    import pathlib  # noqa: F401
    import threading  # noqa: F401
    import typing  # noqa: F401

    announced, announce = os.pipe()
    builder = os.getpid()
    starter = ForkedCall.start(lambda: _run_server(root, builder, announce))
    os.close(announce)
    if starter is None:
        os.close(announced)
        return
    _started = EarlyServer(root, announced, starter)
    atexit.register(_stop_unused)


def _stop_unused() -> None:
    """(At the command's exit.) A server no build adopted is stopped here, its processes
    reaped, rather than by their parent-death signals, which leave them to init."""
    global _started
    started, _started = _started, None
    if started is not None:
        started.stop()


def take(temporary_dir: Path | None) -> EarlyServer | None:
    """The server start() began, for the first session of the build whose temporary
    directory is `temporary_dir` (a build in another store does not get it); once. None
    too when its starter failed before it had a socket: the build starts its own."""
    global _started
    from ocibuild import store_paths

    early = _started
    if early is None or temporary_dir is None \
            or os.path.dirname(temporary_dir) != os.path.join(early.root, store_paths.TMP):
        return None
    _started = None
    if not early.socket_path:
        early.stop()
        return None
    return early


def _store_root(args: Sequence[str]) -> str | None:
    """The store `ocibuild ARGS` uses when ARGS is a build command, else None."""
    from ocibuild import store_paths

    command = store_paths.build_command(args, flags=("--debug",))
    if command is None or "-h" in args or "--help" in args:
        return None
    return os.path.abspath(command[0] or store_paths.default_root())


def _run_server(root: str, builder: int, announce: int) -> bytes:
    """(The starter, a forked child of the command.) Make the server's socket directory,
    announce it on `announce`, then run the server until the build stops it; b"" then,
    or why it could not run."""
    global _waiting
    import signal

    # Ctrl-C reaches the whole process group: the server, as Session runs it, ends
    # when the build stops it or dies, and the starter with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(_STOP_SIGNAL, _stopped)
    directory = ""
    try:
        from ocibuild.sandbox import linux

        linux.set_parent_death_signal(_STOP_SIGNAL)
        if os.getppid() != builder or _stop_asked:  # the command ended, or is ending
            return b""
        directory = _socket_directory(root)
        _made[:] = [root, directory]
        socket_path = _socket_path(directory)
        if len(socket_path) > _SOCKET_PATH_MAX:
            return b""  # the build starts its own, in its directory: a shorter path
        os.write(announce, directory.encode(errors="surrogateescape"))
        os.close(announce)
        _waiting = True
        return b"" if _stop_asked else _serve(socket_path)
    except BaseException as exc:  # noqa: BLE001 (the build reports it)
        _waiting = False
        if _stop_asked:  # stopping, and no server started: that is no failure
            return b""
        from ocibuild.errors import OcibuildError

        text = exc.message if isinstance(exc, OcibuildError) else f"{type(exc).__name__}: {exc}"
        return (text or "the file-op server failed").encode()
    finally:
        _waiting = False
        signal.signal(_STOP_SIGNAL, signal.SIG_IGN)
        if directory:
            _remove_directories(root, directory)


def _socket_directory(root: str) -> str:
    """A new 0700 directory for the server's socket, in the starter's own temporary
    directory of the store at `root`."""
    from pathlib import Path

    from ocibuild.atomic import new_dir
    from ocibuild.cache import temporaries

    return str(new_dir(temporaries.process_dir(Path(root)), "ocib-w-"))


def _socket_path(directory: str) -> str:
    return f"{directory}/s"


def _serve(socket_path: str) -> bytes:
    """Run the server on `socket_path` until it ends; b"" (a failure raises)."""
    from ocibuild.idspace.worker import run_server

    run_server(socket_path, forked=True)
    return b""


def _remove_directories(root: str, directory: str) -> None:
    """The socket's directory and the starter's own in the store: the starter ends with
    os._exit, which runs no atexit handler."""
    from pathlib import Path

    from ocibuild.atomic import remove_tree
    from ocibuild.cache import temporaries

    remove_tree(directory)
    temporaries.leave(Path(root))


# (In the starter.) A stop is only noted, and seen at the starter's next step, until
# the starter starts its server; from then on the stop ends the server and the starter
# at once (its directories removed), whatever the start was doing: a server whose start
# had not reached it yet sees its starter gone and does not serve. A stop never raises:
# an exception from a signal handler that lands in an import's or a finalizer's callback
# is printed and dropped, and one raised in the clean-up would leave it half done.
_waiting = False
_stop_asked = False
_made: list[str] = []  # the store's root and the socket's directory, once made


def _stopped(signum: int, frame: object) -> None:
    global _stop_asked, _waiting
    _stop_asked = True
    if _waiting:
        # A second stop can land while this one's clean-up holds a lock (temporaries'),
        # and would wait on it for ever: from here on a stop is only noted.
        _waiting = False
        _end_children()
        if _made:
            _remove_directories(*_made)
        os._exit(0)


def _end_children() -> None:
    """Kill and reap the starter's children: the server, or whatever part of its start
    (newuidmap) was running."""
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(p) for p in f.read().split()]
    except OSError:
        return  # they die by their parent-death signal, then; init reaps them
    for child in children:
        try:
            os.kill(child, 9)
        except ProcessLookupError:
            pass
    for child in children:
        try:
            os.waitpid(child, 0)
        except ChildProcessError:
            pass
