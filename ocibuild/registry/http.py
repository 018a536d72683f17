"""HTTP/1.1 for the registry client: keep-alive connections shared by threads; the
messages themselves are `wire.py`'s.

Why not urllib3 (nor `http.client`, see `wire.py`): its import alone (~30 ms) took longer
than a whole push of an image the registry already holds, and the client needs only
this much of HTTP:

- Connections: idle keep-alive connections are kept per origin (scheme, host, port), at
  most `per_origin` of each, and any thread takes one. A connection goes back only once
  its response was read to the end; an idle one the server has closed meanwhile is
  dropped before it is used again.
- Timeouts, per request: `connect_timeout` for the TCP connection and the TLS handshake,
  `read_timeout` for each wait for bytes after that (so a slow but moving body never
  times out, a silent one does).
- TLS with the caller's context, asked for on the first https connection: a registry
  reached over plain http never loads the system CA store, nor even `ssl`.
- Bodies: bytes, or a readable sent in blocks (with the Content-Length the caller gives,
  chunked without one). Responses are streamed and never decoded (no Accept-Encoding
  but identity is sent).
- Redirects (301, 302, 303, 307, 308) are followed up to `MAX_REDIRECTS` times (one
  more is `TooManyRedirects`); a 303 turns into a GET. Leaving the origin drops the
  credentials, as browsers do: a registry sends blob downloads to a storage host that
  must not see them. A streamed body cannot be sent twice, so a redirect of one is
  returned as it is.
- Failures are `HttpError`s whose `reason` is readable text: `ConnectError` (refused,
  unreachable, unknown name, TLS refused), `ConnectTimeout`, `ReadTimeout`,
  `BrokenConnection` (cut mid-request or mid-answer, or not HTTP). A body cut short
  ends in `BrokenConnection` at the read that finds nothing more, after the bytes that
  did arrive.
- `shut()` ends every request in flight from another thread (a blocked send or read
  fails at once): how a command stops its transfers on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable, Iterator, Mapping

from ocibuild.registry.wire import BodyReader, Connection, Headers, WireError

TYPE_CHECKING = False  # typing costs a registry command ~2 ms
if TYPE_CHECKING:
    import ssl

    from ocibuild.registry.wire import Body

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
BLOCK = 1 << 20  # bytes a streamed request body is read in
DRAIN_LIMIT = 1 << 20  # a longer unread body costs the connection, not the time to read it
_ORIGIN_ONLY = frozenset({"authorization", "cookie", "proxy-authorization"})
_BODY_HEADERS = frozenset({"content-length", "content-type", "transfer-encoding"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


class HttpError(Exception):
    """A request failed below HTTP; `reason` says how, for a person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectError(HttpError):
    """No connection: refused, unreachable, an unknown name, a refused TLS handshake."""


class CertificateRejected(ConnectError):
    """The TLS context did not verify the server's certificate chain."""


class ConnectTimeout(HttpError):
    """No connection (TCP and TLS) within the connect timeout."""


class ReadTimeout(HttpError):
    """A connection made no progress (no answer, no body bytes) for the read timeout."""


class BrokenConnection(HttpError):
    """The connection broke mid-request or mid-answer, or what came back is not HTTP."""


class TooManyRedirects(HttpError):
    """Redirected more than `MAX_REDIRECTS` times (a loop, most likely)."""


class Response:
    """A response whose body is still on the connection: `read`, `stream`, or `drain`,
    then `release` (which `drain` does), so the connection serves the next request."""

    def __init__(self, pool: Pool, origin: Origin, conn: Connection, status: int,
                 headers: Headers, body: BodyReader) -> None:
        self.status = status
        self.headers = headers
        self._pool = pool
        self._origin = origin
        self._conn: Connection | None = conn
        self._body = body

    def read(self, amt: int) -> bytes:
        """Up to `amt` bytes; fewer only at the end of the body, b"" after it."""
        try:
            return self._body.read(amt)
        except TimeoutError:
            raise ReadTimeout("read timed out") from None
        except (OSError, WireError) as exc:
            raise BrokenConnection(f"connection broken: {_describe(exc)}") from None

    def stream(self, size: int) -> Iterator[bytes]:
        """The rest of the body in pieces of `size` bytes (the last one shorter)."""
        while data := self.read(size):
            yield data

    def drain(self) -> None:
        """Read and drop what is left of the body (a short one), then release."""
        with contextlib.suppress(HttpError):
            left = DRAIN_LIMIT
            while left > 0 and (data := self.read(min(left, 65536))):
                left -= len(data)
        self.release()

    def release(self) -> None:
        """Give the connection back if the body was read to the end, else close it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._body.reusable:
            self._pool.put(self._origin, conn)
        else:
            self._pool.discard(conn)


class Pool:
    """Connections to any number of origins, shared by threads (see the module notes)."""

    def __init__(self, tls_context: Callable[[bool], ssl.SSLContext], *, per_origin: int,
                 headers: Mapping[str, str]) -> None:
        # tls_context(False): the context to try first; tls_context(True): the one to
        # verify again with where that one rejected a chain (options.ssl_context)
        self._make_tls = tls_context
        self._tls: ssl.SSLContext | None = None
        self._tls_complete = False  # the second context is in use
        self._per_origin = per_origin
        self._headers = dict(headers)
        self._idle: dict[Origin, list[Connection]] = {}
        self._live: set[Connection] = set()  # connected, idle or in use: for shut()
        self._lock = threading.Lock()

    def request(self, method: str, url: str, *, headers: Mapping[str, str], body: Body,
                connect_timeout: float, read_timeout: float) -> Response:
        """Send a request, following redirects; the answer's body is unread."""
        sent = {**self._headers, **headers}
        for _ in range(MAX_REDIRECTS + 1):
            origin, target = _split(url)
            resp = self._exchange(origin, method, target, sent, body, connect_timeout,
                                  read_timeout)
            location = resp.headers.get("Location")
            if resp.status not in REDIRECTS or not location or not _resendable(body):
                return resp
            resp.drain()
            from urllib.parse import urljoin

            url = urljoin(url, location)
            if _split(url)[0] != origin:
                sent = {k: v for k, v in sent.items() if k.lower() not in _ORIGIN_ONLY}
            if resp.status == 303 and method != "HEAD":
                method, body = "GET", None
                sent = {k: v for k, v in sent.items() if k.lower() not in _BODY_HEADERS}
        raise TooManyRedirects("too many redirects")

    def _exchange(self, origin: Origin, method: str, target: str, headers: dict[str, str],
                  body: Body, connect_timeout: float, read_timeout: float) -> Response:
        conn = self._take(origin, connect_timeout)
        try:
            conn.sock.settimeout(read_timeout)
            conn.send(method, target, headers, body, BLOCK)
            status, answer, reader = conn.read_head(method)
        except TimeoutError:
            self.discard(conn)
            raise ReadTimeout("read timed out") from None
        except (OSError, WireError):
            self.discard(conn)
            raise BrokenConnection("Connection aborted.") from None
        except ValueError as exc:  # a header or URL that would break the request's lines
            self.discard(conn)
            raise BrokenConnection(f"cannot send the request: {exc}") from None
        except BaseException:  # the body's reader stopped it (cancelled): never reused
            self.discard(conn)
            raise
        return Response(self, origin, conn, status, answer, reader)

    def _take(self, origin: Origin, connect_timeout: float) -> Connection:
        """An idle connection to `origin` that is still open, or a new one."""
        with self._lock:
            idle = self._idle.get(origin, [])
            while idle:
                conn = idle.pop()
                if not _closed_by_peer(conn.sock):
                    return conn
                self._live.discard(conn)
                conn.close()
            tls = None
            if origin[0] == "https":
                if self._tls is None:
                    self._tls = self._make_tls(False)
                tls = self._tls
        try:
            conn = _connect(origin, tls, connect_timeout)
        except CertificateRejected:
            with self._lock:
                if tls is self._tls:  # (another thread may have moved on already)
                    if self._tls_complete:
                        raise
                    self._tls, self._tls_complete = self._make_tls(True), True
                tls = self._tls
            conn = _connect(origin, tls, connect_timeout)
        with self._lock:
            self._live.add(conn)
        return conn

    def put(self, origin: Origin, conn: Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self._per_origin:
                idle.append(conn)
                return
            self._live.discard(conn)
        conn.close()

    def discard(self, conn: Connection) -> None:
        with self._lock:
            self._live.discard(conn)
        conn.close()

    def shut(self) -> None:
        """Shut every connection's socket, from any thread: a request blocked in a send
        or a read on one fails at once."""
        with self._lock:
            live = list(self._live)
        for conn in live:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close the idle connections (those in use close when released)."""
        with self._lock:
            idle = [conn for conns in self._idle.values() for conn in conns]
            self._idle.clear()
            self._live.difference_update(idle)
        for conn in idle:
            conn.close()


def _split(url: str) -> tuple[Origin, str]:
    """(origin, request target) of an absolute http(s) URL; its fragment dropped, and no
    whitespace or control character allowed anywhere in it (a Location header is the
    registry's text). Parsed here, not by urllib's urlsplit: that module's imports (re,
    ipaddress) were a quarter of the cost of the registry question a cached `build
    --push` asks before it answers from its memo."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS or not url.isprintable() or " " in url:
        raise ConnectError(f"not an http(s) URL: {url!r}")
    end = len(rest)
    for mark in "/?#":
        found = rest.find(mark)
        if 0 <= found < end:
            end = found
    authority, rest = rest[:end], rest[end:].partition("#")[0]
    path, _, query = rest.partition("?")
    host = authority.rpartition("@")[2]  # no userinfo
    if host.startswith("["):  # an IPv6 address: [addr] or [addr]:port
        host, bracket, port_text = host[1:].partition("]")
        if not bracket or port_text[:1] not in ("", ":"):
            raise ConnectError(f"not an http(s) URL: {url!r}")
        port_text = port_text[1:]
    else:
        host, _, port_text = host.partition(":")
    if not host:
        raise ConnectError(f"not an http(s) URL: {url!r}")
    if port_text and not (port_text.isascii() and port_text.isdigit()
                          and int(port_text) <= 65535):
        raise ConnectError(f"bad port in {url!r}")
    port = int(port_text) if port_text else 0
    target = (path or "/") + (f"?{query}" if query else "")
    return (scheme, host.lower(), port or _DEFAULT_PORTS[scheme]), target


def _resendable(body: Body) -> bool:
    return body is None or isinstance(body, bytes)


def _connect(origin: Origin, tls: ssl.SSLContext | None, timeout: float) -> Connection:
    scheme, host, port = origin
    try:
        sock = _open_socket(host, port, tls, timeout)
    except TimeoutError:
        raise ConnectTimeout(f"no connection within {timeout:g} s") from None
    except socket.gaierror as exc:
        raise ConnectError(f"Failed to resolve {host!r} ({exc})") from None
    except OSError as exc:
        if tls is not None and _rejected_certificate(exc):
            raise CertificateRejected(_describe(exc)) from None
        raise ConnectError(_describe(exc)) from None
    return Connection(sock, host, port, _DEFAULT_PORTS[scheme])


def _rejected_certificate(exc: OSError) -> bool:
    import ssl  # loaded: the connection was a TLS one

    return isinstance(exc, ssl.SSLCertVerificationError)


def _open_socket(host: str, port: int, tls: ssl.SSLContext | None, timeout: float
                 ) -> socket.socket:
    """The TCP connection and the TLS handshake, each within `timeout`."""
    # an ASCII name is resolved as bytes: a str goes through the IDNA codec (~1.5 ms)
    sock = socket.create_connection((host.encode() if host.isascii() else host, port),
                                    timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock if tls is None else tls.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def _describe(exc: BaseException) -> str:
    """An OSError as its message alone ("Connection refused"), anything else as text."""
    if isinstance(exc, OSError) and isinstance(exc.strerror, str) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether an idle connection has something to read: the server closed it (or sent
    what no request asked for); either way it cannot carry another request."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
