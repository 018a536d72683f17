"""Unix stream sockets as the builder uses them, from `_socket`, the C module under
`socket`. socket.py makes an enum of every constant as it loads (with `selectors`,
~1.5 ms of every build); the builder's connections to its helpers need none of that.

The sockets are `_socket.socket` objects: close-on-exec, with `sendall`, `recv`,
`sendmsg`, `shutdown`, `settimeout`; not context managers (use contextlib.closing).
"""

from __future__ import annotations

import _socket
import sys

Socket = _socket.socket
SHUT_WR = _socket.SHUT_WR


def connect(path: str) -> Socket:
    """A new connection to the unix stream socket at `path` (OSError if none answers)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def pair() -> tuple[Socket, Socket]:
    """Two connected unix stream sockets."""
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)


def send_fds(sock: Socket, data: bytes, fds: list[int]) -> None:
    """Send `data` with copies of the descriptors `fds` (SCM_RIGHTS), as socket.send_fds."""
    rights = b"".join(fd.to_bytes(_INT, sys.byteorder, signed=True) for fd in fds)
    sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])


def receive_fds(sock: Socket, size: int, most: int) -> tuple[bytes, list[int]]:
    """Up to `size` bytes and the descriptors (at most `most`) sent with them, as
    socket.recv_fds; b"" at the end of the stream."""
    data, ancillary, _, _ = sock.recvmsg(size, _socket.CMSG_SPACE(most * _INT),
                                         _socket.MSG_CMSG_CLOEXEC)
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % _INT
            fds += [int.from_bytes(payload[i:i + _INT], sys.byteorder, signed=True)
                    for i in range(0, usable, _INT)]
    return data, fds


_INT = 4  # bytes of a descriptor in SCM_RIGHTS
