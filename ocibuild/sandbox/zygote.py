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
"""

from __future__ import annotations

import _signal as signal
import _socket
import gc
import os
import sys

from ocibuild.sandbox import protocol
from ocibuild.sandbox.nsinit import SetupError, enter_user_namespace, run_step_process

_FDS_PER_SPAWN = 3
_INT_SIZE = 4


def _receive_spawn(channel: _socket.socket) -> list[int] | None:
    """One spawn request's descriptors; None when the builder is gone."""
    space = _socket.CMSG_SPACE(_FDS_PER_SPAWN * _INT_SIZE)
    data, ancillary, _, _ = channel.recvmsg(1, space, _socket.MSG_CMSG_CLOEXEC)
    if not data:
        return None
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % _INT_SIZE
            fds += [int.from_bytes(payload[i:i + _INT_SIZE], sys.byteorder, signed=True)
                    for i in range(0, usable, _INT_SIZE)]
    return fds


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
    while True:
        try:
            fds = _receive_spawn(channel)
        except InterruptedError:
            continue
        except OSError:
            fds = None  # e.g. ECONNRESET: the builder is gone all the same
        if fds is None:
            _remove_staging(staging)
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


def main() -> None:
    fd = int(sys.argv[1])
    os.set_inheritable(fd, False)
    os.chdir("/")  # hold no directory of the builder's busy
    try:
        conf = _set_up(fd)
    except SetupError as e:
        protocol.send(fd, protocol.ERROR, str(e))
        os._exit(125)
    except BaseException as e:
        protocol.send(fd, protocol.ERROR, f"sandbox fork server failed: {e!r}")
        os._exit(125)
    serve(fd, conf["staging"])


if __name__ == "__main__":
    main()
