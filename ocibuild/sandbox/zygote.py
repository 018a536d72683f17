"""The fork server: one small single-threaded helper per builder process and isolation
mode, which forks a process for each step.

Starting a Python interpreter per step costs ~20 ms; forking this already started,
single-threaded process costs well under one. The builder is never forked (it has
threads); this process has none.

Started by zygote_client as `python -I -S -c BOOT CHANNEL_FD` with a Unix stream socket
to the builder. It reads a START message ({isolation, mapping, uid, gid, staging}),
enters the user namespace that every step of this builder shares (userns isolation;
the builder writes the id maps from outside, through newuidmap/newgidmap for
subordinate ranges, so those setuid tools run once per builder, not once per step),
answers READY (or ERROR), then serves: each request is one SPAWN byte carrying three
descriptors (the step's control socket, stdout and stderr). The forked child runs
nsinit.run_step_process.

It exits when the builder's end of the channel closes (the builder ended, however it
died), removing the staging directory; steps in flight notice their own control
socket closing and die too.

A rootless build with a file-op server (ocibuild.idspace.worker) has its fork server
forked by that server instead (serve_from_file_op_server): that process is already an
interpreter with these modules loaded, under the same id mapping, so the fork server
comes up in about a millisecond instead of ~30 (an interpreter start, imports,
newuidmap and newgidmap), and the first RUN of a cold build does not wait for it. It
leaves everything of the server behind first: it gets a session of its own, default
signal dispositions, no descriptor but its channel and stdio, and a user namespace of
its own nested in the server's (mapped one to one, so ids mean what they mean there):
its steps hold no capability over the server's namespace, as they held none over the
sibling namespace of a started fork server.
"""

from __future__ import annotations

import _signal as signal
import _socket
import contextlib
import gc
import os
import sys

from ocibuild import unixsocket
from ocibuild.sandbox import linux, protocol
from ocibuild.sandbox.nsinit import SetupError, enter_user_namespace, run_step_process

TYPE_CHECKING = False  # typing and collections: imports this helper need not pay for
if TYPE_CHECKING:
    from collections.abc import Callable

_FDS_PER_SPAWN = 3


def _receive_spawn(channel: _socket.socket) -> list[int] | None:
    """One spawn request's descriptors; None when the builder is gone."""
    data, fds = unixsocket.receive_fds(channel, 1, _FDS_PER_SPAWN)
    return fds if data else None


def _set_up(fd: int) -> dict:
    message = protocol.receive_from_builder(fd)
    if message is None or message[0] != protocol.START:
        os._exit(0)
    conf: dict = message[1]  # type: ignore[assignment]
    if conf["isolation"] == "userns":
        enter_user_namespace(conf["mapping"], fd, conf["uid"], conf["gid"])
    protocol.send(fd, protocol.READY)
    return conf


def _remove_staging(staging: str) -> None:
    """The builder removes its staging directory when it stops this server; when it was
    killed instead, this process, which outlives it, does."""
    for path in (os.path.join(staging, "root"), os.path.join(staging, "secrets"), staging):
        try:
            os.rmdir(path)
        except OSError:
            pass


def serve(fd: int, staging: str) -> None:
    channel = _socket.socket(fileno=fd)
    # A collection in a forked child would touch every object and copy every page;
    # this process makes no garbage cycles worth collecting.
    gc.disable()
    gc.freeze()
    # children are reaped by the kernel; each step process restores the default
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # A step's slirp4netns leaves ~30 ms after its step's process, which does not wait
    # for it: it becomes this process's child and is reaped here, not left to init (a
    # container's first process often never reaps).
    linux.become_child_subreaper()
    while True:
        try:
            fds = _receive_spawn(channel)
        except InterruptedError:
            continue
        except OSError:
            fds = None  # e.g. ECONNRESET: the builder is gone all the same
        if fds is None:
            _remove_staging(staging)
            channel.close()  # the builder waits for this, not for the helpers below
            _wait_for_children(_CHILDREN_EXIT_WAIT)
            os._exit(0)
        if len(fds) != _FDS_PER_SPAWN:
            for extra in fds:
                os.close(extra)
            continue
        try:
            pid = os.fork()
        except OSError as e:
            protocol.send(fds[0], protocol.ERROR, f"cannot start the step's process: {e}")
            pid = -1
        if pid == 0:
            channel.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            run_step_process(*fds)
        for passed in fds:
            os.close(passed)


_CHILDREN_EXIT_WAIT = 1.0  # seconds, as the fork server leaves, for a step's last helpers


def _wait_for_children(limit: float) -> None:
    """Until no child is left (the kernel reaps them: SIGCHLD is ignored), or `limit`."""
    import time

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                time.sleep(0.002)
        except ChildProcessError:
            return


def serve_from_file_op_server(fd: int) -> None:
    """(A child of the build's file-op server, forked for a connection that asked for a
    fork server; never returns.) Leave the server's session, signal dispositions and
    descriptors behind, read START on `fd`, enter a user namespace nested in the
    server's, answer READY (or ERROR) and serve spawn requests on `fd`."""
    _set_up_and_serve(fd, lambda fd: _set_up_under_server(fd, namespace_made=False))


def serve_early(waiting: _socket.socket, path: str) -> None:
    """(A child of the build's file-op server, forked as the server starts; never
    returns.) Enter the nested user namespace at once, then wait for the builder's
    connection, on a socket of its own at `path` (the builder's first choice: the
    server may be busy loading a module) or passed by the server on `waiting`; serve it
    as serve_from_file_op_server does. Leaves when `waiting` ends first (the server
    stops), and where the namespace cannot be made (the server's fork server then says
    why)."""
    linux.set_parent_death_signal(signal.SIGKILL)
    try:
        _enter_nested_user_namespace(waiting.fileno())
    except SetupError:
        os._exit(0)
    fd = _builder_connection(waiting, path)
    if fd is None:
        os._exit(0)
    _set_up_and_serve(fd, lambda fd: _set_up_under_server(fd, namespace_made=True))


def _builder_connection(waiting: _socket.socket, path: str) -> int | None:
    """The first connection on `path` or descriptor on `waiting`; None when `waiting`
    ends first."""
    import select

    listener = _listening(path)
    try:
        ready = select.select([waiting] if listener is None else [waiting, listener],
                              [], [])[0]
        if listener is not None and listener in ready:
            return listener._accept()[0]  # _socket's accept: (descriptor, address)
        _, fds = unixsocket.receive_fds(waiting, 1, 1)
        return fds[0] if fds else None
    except OSError:
        return None
    finally:
        if listener is not None:
            listener.close()
            with contextlib.suppress(OSError):
                os.unlink(path)


def _listening(path: str) -> _socket.socket | None:
    """A socket listening on `path`; None where none can be made (the builder then asks
    the server)."""
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(1)
    except OSError:
        listener.close()
        return None
    return listener


def _leave_server(fd: int) -> None:
    """Keep nothing of the file-op server but `fd` (and stdio)."""
    os.setsid()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)  # the server ignores them
    linux.set_parent_death_signal(signal.SIGKILL)
    _keep_only(fd)
    os.chdir("/")


def _set_up_under_server(fd: int, namespace_made: bool) -> dict:
    """Leave the server behind, read START, enter the nested user namespace (unless
    `namespace_made` already) and answer READY."""
    _leave_server(fd)
    message = protocol.receive_from_builder(fd)
    if message is None or message[0] != protocol.START:
        os._exit(0)
    conf: dict = message[1]  # type: ignore[assignment]
    if not namespace_made:
        _enter_nested_user_namespace(fd)
    if conf["mapping"] == "subids":  # a single-id namespace has setgroups denied
        os.setgroups([])
    protocol.send(fd, protocol.READY)
    return conf


def _keep_only(fd: int) -> None:
    """Close every descriptor but `fd`; stdin from /dev/null (the server's is a pipe)."""
    null = os.open("/dev/null", os.O_RDONLY)
    if null != 0:
        os.dup2(null, 0)
        os.close(null)
    os.closerange(3, fd)
    os.closerange(fd + 1, _MAX_FD)


_MAX_FD = 1 << 20


def _enter_nested_user_namespace(channel: int) -> None:
    """Unshare a user namespace inside the current one and have it mapped one to one
    onto the ids this one has. The maps of a new namespace can be written only from
    outside it: a child process does the unsharing and goes on as the fork server,
    while this process writes its maps and then waits for it, so that its parent-death
    signal stays armed to a live parent. This process lets go of `channel` at once: the
    builder (or the file-op server, for serve_early) must see it close when the fork
    server ends. The caller drops the new namespace's groups."""
    unshared_r, unshared_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    parent = os.getpid()
    child = os.fork()
    if child:
        os.close(channel)
        os.close(unshared_w)
        os.close(mapped_r)
        status = 1
        try:
            if os.read(unshared_r, 1) == b"u":
                for kind in ("uid", "gid"):
                    with open(f"/proc/self/{kind}_map") as own:
                        ranges = [line.split() for line in own.read().splitlines()]
                    # the same ids inside as here: first column, first column, length
                    text = "".join(f"{r[0]} {r[0]} {r[2]}\n" for r in ranges)
                    fd = os.open(f"/proc/{child}/{kind}_map", os.O_WRONLY)
                    try:
                        os.write(fd, text.encode())
                    finally:
                        os.close(fd)
                os.write(mapped_w, b"m")
            os.close(mapped_w)
            os.waitpid(child, 0)  # as long as the fork server lives
            status = 0
        finally:
            os._exit(status)
    os.close(unshared_r)
    os.close(mapped_w)
    linux.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)
    try:
        linux.unshare(linux.CLONE_NEWUSER)
    except OSError as e:
        raise SetupError(f"cannot create a user namespace for the sandbox's fork server "
                         f"({e.strerror})") from e
    os.write(unshared_w, b"u")
    os.close(unshared_w)
    if os.read(mapped_r, 1) != b"m":
        raise SetupError("cannot map ids in the sandbox fork server's user namespace")
    os.close(mapped_r)


def _set_up_and_serve(fd: int, set_up: Callable[[int], dict]) -> None:
    """Set up with `set_up` (which answers READY), or say why not on `fd` and exit;
    then serve."""
    try:
        conf = set_up(fd)
    except SetupError as e:
        protocol.send(fd, protocol.ERROR, str(e))
        os._exit(125)
    except BaseException as e:
        protocol.send(fd, protocol.ERROR, f"sandbox fork server failed: {e!r}")
        os._exit(125)
    serve(fd, conf["staging"])


def main() -> None:
    fd = int(sys.argv[1])
    os.set_inheritable(fd, False)
    os.chdir("/")  # hold no directory of the builder's busy
    _set_up_and_serve(fd, _set_up)


if __name__ == "__main__":
    main()
