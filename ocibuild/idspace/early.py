"""The file-op server started before the build knows it needs one.

A build learns whether any step runs only when its cache keys are looked up, about
0.1 s into the command. Started then, the file-op server (an interpreter in a user
namespace, newuidmap and newgidmap, its modules) came up about 60 ms later on two busy
cores, and the first COPY or layer write of a cold build waited for it.

So a `build` command that the rebuild memo did not answer forks a starter at once, while
it is still single-threaded and small (no interpreter start, no imports). The starter
runs the server exactly as Session would (run_in_userns), on another core and outside
the command's GIL, while the command loads the engine. The build's first session adopts
it (userns.Session). A build that runs no step never connects: as the command exits it
stops the starter, which kills and reaps the server, and the socket's directory goes
with the command's temporary directory of the store. Should the command die instead,
parent-death signals end the starter and the server.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ocibuild.forked_call import ForkedCall, single_threaded

_SOCKET_PATH_MAX = 100  # a unix socket's path has at most 107 bytes
_STOP_SIGNAL = 12  # SIGUSR2
_STOP_WAIT = 2.0  # seconds for a stopped starter to end its server and exit


class EarlyServer:
    """A server started by start(): its socket, and the starter that runs it."""

    __slots__ = ("directory", "socket_path", "_starter")

    def __init__(self, directory: Path, socket_path: str, starter: ForkedCall) -> None:
        self.directory, self.socket_path, self._starter = directory, socket_path, starter

    def wait(self) -> str:
        """Block until the server has ended; why it failed, or "" when it was stopped."""
        return self._starter.result().decode(errors="replace")

    def stop(self) -> None:
        """End the server and its starter now, and reap them (a starter that does not
        end within _STOP_WAIT is killed; its server then dies by its death signal)."""
        if self._starter.pid:  # not reaped yet (kill(0) would signal our whole group)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._starter.pid, _STOP_SIGNAL)
        self._starter.result(timeout=_STOP_WAIT)


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
    from ocibuild.cache import temporaries

    try:
        directory = Path(tempfile.mkdtemp(prefix="ocib-w-",
                                          dir=temporaries.process_dir(Path(root))))
    except OSError:  # no store there yet: the build makes it, and its server too
        return
    socket_path = str(directory / "s")
    if len(socket_path) > _SOCKET_PATH_MAX:
        os.rmdir(directory)
        return
    builder = os.getpid()
    starter = ForkedCall.start(lambda: _run_server(socket_path, builder))
    if starter is None:
        os.rmdir(directory)
        return
    _started = EarlyServer(directory, socket_path, starter)
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
    directory is `temporary_dir` (a build in another store does not get it); once."""
    global _started
    early = _started
    if early is None or temporary_dir is None or early.directory.parent != temporary_dir:
        return None
    _started = None
    return early


def _store_root(args: Sequence[str]) -> str | None:
    """The store `ocibuild ARGS` uses when ARGS is a build command, else None."""
    from ocibuild import store_paths

    command = store_paths.build_command(args, flags=("--debug",))
    if command is None or "-h" in args or "--help" in args:
        return None
    return os.path.abspath(command[0] or store_paths.default_root())


def _run_server(socket_path: str, builder: int) -> bytes:
    """(The starter, a forked child of the command.) Run the server until the build
    stops it; b"" then, or why it could not run."""
    import signal

    # Ctrl-C reaches the whole process group: the server, as Session runs it, ends
    # when the build stops it or dies, and the starter with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(_STOP_SIGNAL, _stopped)
    try:
        from ocibuild.sandbox import linux

        linux.set_parent_death_signal(_STOP_SIGNAL)
        if os.getppid() != builder:  # the command ended before the signal was armed
            return b""
        from ocibuild.idspace.worker import SERVE
        from ocibuild.sandbox import run_in_userns

        run_in_userns(SERVE, {"socket": socket_path, "parent": os.getpid()})
        return b""
    except _Stopped:
        signal.signal(_STOP_SIGNAL, signal.SIG_IGN)
        _end_children()
        return b""
    except BaseException as exc:  # noqa: BLE001 (the build reports it)
        from ocibuild.errors import OcibuildError

        text = exc.message if isinstance(exc, OcibuildError) else f"{type(exc).__name__}: {exc}"
        return (text or "the file-op server failed").encode()


class _Stopped(BaseException):
    """The command is gone, or is exiting without having used the server."""


def _stopped(signum: int, frame: object) -> None:
    raise _Stopped


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
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, 9)
    for child in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)
