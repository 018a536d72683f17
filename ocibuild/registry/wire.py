"""HTTP/1.1 messages on one connection: a request written, a response's head parsed, its
body framed (RFC 9112).

Written here rather than taken from `http.client`, which loads `email` to parse headers
and `ssl` whether or not TLS is used: ~8 ms of every command that talks to a registry,
a third of a whole push the registry already holds. What a registry client needs is
small: requests with a body of bytes or a stream (with the caller's Content-Length, or
chunked without one); responses framed by Content-Length, chunked transfer coding or
the connection's end; no body for HEAD, 1xx, 204 and 304; interim 1xx answers skipped;
keep-alive unless either side says close.

Socket failures come out as they are (`TimeoutError`, `OSError`); an answer that is not
HTTP, or a body that ends early, is a `WireError`. The caller (`http.py`) says which
request it was and keeps or drops the connection.
"""

from __future__ import annotations

import socket

TYPE_CHECKING = False  # typing costs a registry command ~2 ms
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Protocol

    class Readable(Protocol):
        def read(self, n: int = -1, /) -> bytes: ...

    class _LineReader(Readable, Protocol):
        def readline(self, limit: int = -1, /) -> bytes: ...

    Body = bytes | Readable | None

MAX_LINE = 65536
MAX_HEADERS = 100
_NO_BODY_STATUSES = frozenset({204, 304})
_EXPECTS_BODY = frozenset({"POST", "PUT", "PATCH"})


class WireError(Exception):
    """What came back is not HTTP/1.x, or a body ended before its framing said."""


class Headers:
    """A response's headers; a header sent several times reads as one, comma-joined."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs  # (lower-case name, value)

    def get(self, name: str, default: str = "") -> str:
        name = name.lower()
        values = [v for k, v in self._pairs if k == name]
        return ", ".join(values) if values else default


class Connection:
    """One connection to `host`:`port` (`sock` may be a TLS socket)."""

    def __init__(self, sock: socket.socket, host: str, port: int, default_port: int) -> None:
        self.sock = sock
        self._reader: _LineReader = sock.makefile("rb")
        host = f"[{host}]" if ":" in host else host
        self._host = host if port == default_port else f"{host}:{port}"

    def close(self) -> None:
        self._reader.close()
        self.sock.close()

    def send(self, method: str, target: str, headers: Mapping[str, str], body: Body,
             block: int) -> None:
        """Write a request; a readable body is read in `block`s (and sent chunked when
        `headers` give no Content-Length)."""
        if any(c <= " " or c == "\x7f" for c in target):
            raise ValueError(f"a space or control character in {target[:80]!r}")
        names = {k.lower() for k in headers}
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host}"]
        if "accept-encoding" not in names:
            lines.append("Accept-Encoding: identity")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        chunked = False
        if "content-length" not in names:
            if isinstance(body, bytes):
                lines.append(f"Content-Length: {len(body)}")
            elif body is None:
                if method in _EXPECTS_BODY:
                    lines.append("Content-Length: 0")
            else:
                chunked = True
                lines.append("Transfer-Encoding: chunked")
        if any(c in line for line in lines for c in "\0\r\n"):  # no header may start another
            raise ValueError("a line break or NUL in a request header")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if body is None or isinstance(body, bytes):
            self.sock.sendall(head + (body or b""))
            return
        self.sock.sendall(head)
        while data := body.read(block):
            self.sock.sendall(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
        if chunked:
            self.sock.sendall(b"0\r\n\r\n")

    def read_head(self, method: str) -> tuple[int, Headers, BodyReader]:
        """The status, headers and body of the next final answer (1xx skipped)."""
        while True:
            status, keep_alive = self._status_line()
            headers = self._header_lines()
            if 100 <= status < 200 and status != 101:
                continue
            connection = {t.strip().lower() for t in headers.get("Connection").split(",")}
            keep_alive = (keep_alive or "keep-alive" in connection) and "close" not in connection
            return status, headers, self._body(method, status, headers, keep_alive)

    def _status_line(self) -> tuple[int, bool]:
        line = _readline(self._reader)
        if not line:
            raise WireError("the connection closed without an answer")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") \
                or len(parts[1]) != 3 or not parts[1].isdigit():
            raise WireError(f"not an HTTP answer: {line[:40]!r}")
        return int(parts[1]), parts[0] != b"HTTP/1.0"

    def _header_lines(self) -> Headers:
        pairs: list[tuple[str, str]] = []
        while (line := _readline(self._reader)) not in (b"\r\n", b"\n"):
            if not line:
                raise WireError("the connection closed inside the answer's headers")
            text = line.decode("latin-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and pairs:  # an obsolete folded continuation
                pairs[-1] = (pairs[-1][0], f"{pairs[-1][1]} {text.strip()}")
                continue
            name, sep, value = text.partition(":")
            if not sep or not name or name != name.strip():
                raise WireError(f"a malformed header line: {text[:40]!r}")
            pairs.append((name.lower(), value.strip()))
            if len(pairs) > MAX_HEADERS:
                raise WireError(f"more than {MAX_HEADERS} headers")
        return Headers(pairs)

    def _body(self, method: str, status: int, headers: Headers, keep_alive: bool
              ) -> BodyReader:
        if method == "HEAD" or status in _NO_BODY_STATUSES or status < 200:
            return BodyReader(self._reader, 0, keep_alive)
        codings = [c.strip().lower() for c in headers.get("Transfer-Encoding").split(",")]
        if codings[-1] == "chunked":
            return BodyReader(self._reader, None, keep_alive, chunked=True)
        if codings != [""]:  # another coding: the body runs to the connection's end
            return BodyReader(self._reader, None, False)
        length = headers.get("Content-Length")
        if not length:
            return BodyReader(self._reader, None, False)
        values = {v.strip() for v in length.split(",")}
        # isascii: str.isdigit also takes "²", which int() refuses
        if len(values) != 1 or not ((value := values.pop()).isascii() and value.isdigit()):
            raise WireError(f"a bad Content-Length: {length[:40]!r}")
        return BodyReader(self._reader, int(value), keep_alive)


class BodyReader:
    """A response body framed by a length, chunks, or the connection's end (`length`
    None, not chunked). `done` once it was read to the end; `reusable` if the
    connection can then carry another request."""

    def __init__(self, reader: _LineReader, length: int | None, keep_alive: bool, *,
                 chunked: bool = False) -> None:
        self._reader = reader
        self._left = length  # of the body, or of the current chunk when chunked
        self._chunked = chunked
        self._got = 0
        self._keep_alive = keep_alive and (chunked or length is not None)
        self.done = length == 0

    @property
    def reusable(self) -> bool:
        return self.done and self._keep_alive

    def read(self, amt: int) -> bytes:
        """Up to `amt` bytes; fewer only at the end of the body (or of what came of it
        before the connection closed: the next read is then a WireError), b"" after."""
        if self.done or amt <= 0:
            return b""
        if self._chunked:
            return self._read_chunks(amt)
        data = self._reader.read(amt if self._left is None else min(amt, self._left))
        self._got += len(data)
        if self._left is None:
            self.done = not data
            return data
        if not data:
            raise WireError(f"the answer ended after {self._got} bytes, {self._left} short")
        self._left -= len(data)
        self.done = self._left == 0
        return data

    def _read_chunks(self, amt: int) -> bytes:
        out: list[bytes] = []
        while amt > 0 and not self.done:
            if not self._left:
                self._left = self._chunk_size()
                if self._left == 0:
                    self._trailer()
                    self.done = True
                    break
            data = self._reader.read(min(amt, self._left))
            if not data:
                if out:
                    break  # what came; the next read reports the end
                raise WireError(f"the answer ended inside a chunk after {self._got} bytes")
            self._got += len(data)
            self._left -= len(data)
            amt -= len(data)
            out.append(data)
            if self._left == 0 and self._reader.read(2) != b"\r\n":
                raise WireError("a chunk of the answer is not terminated")
        return b"".join(out)

    def _chunk_size(self) -> int:
        line = _readline(self._reader)
        size = line.split(b";", 1)[0].strip()
        # hex digits only: int() would also take "-1" (read to the end) or "0x10"
        if not size or len(size) > 16 or size.strip(b"0123456789abcdefABCDEF"):
            raise WireError(f"a bad chunk size: {line[:40]!r}")
        return int(size, 16)

    def _trailer(self) -> None:
        while (line := _readline(self._reader)) not in (b"\r\n", b"\n"):
            if not line:
                raise WireError("the answer ended inside its trailer")


def _readline(reader: _LineReader) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise WireError("a line of the answer is too long")
    return line
