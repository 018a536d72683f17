"""Real registries for tests and benchmarks: Debian's docker-registry on 127.0.0.1.

`RegistryServer` runs /usr/bin/docker-registry with filesystem storage in a temp
directory, in one of four set-ups: plain http, TLS (a CA and server certificate made
here with `cryptography`), htpasswd basic auth, and bearer tokens from `TokenServer`
(a small token service run in-process). `Proxy` sits in front of a registry to count
requests and to inject faults.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

REGISTRY_BIN = "/usr/bin/docker-registry"
USER = "tester"
PASSWORD = "s3cret-pass"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- certificates -----------------------------------------------------------------------
@dataclass(frozen=True)
class Certs:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: Any, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def make_certs(directory: Path) -> Certs:
    """A CA and a server certificate for 127.0.0.1 and localhost signed by it."""
    import ipaddress

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("ocibuild test CA"))
          .issuer_name(_name("ocibuild test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    certs = Certs(directory / "ca.crt", directory / "server.crt", directory / "server.key")
    certs.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certs.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, certs.server_key)
    return certs


# -- token server ---------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenServer:
    """Issues registry bearer tokens (JWT, RS256, x5c header) the way the distribution
    token spec describes. Valid user/password: the requested actions; anonymous:
    pull only; wrong credentials: 401. Every request is recorded in `issued`."""

    def __init__(self, directory: Path, *, service: str = "test-registry",
                 issuer: str = "test-token-issuer", users: dict[str, str] | None = None,
                 expires_in: int = 300) -> None:
        self.service = service
        self.issuer = issuer
        self.users = users if users is not None else {USER: PASSWORD}
        self.expires_in = expires_in
        self.issued: list[dict[str, Any]] = []
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = dt.datetime.now(dt.UTC)
        self._cert = (x509.CertificateBuilder().subject_name(_name("token signer"))
                      .issuer_name(_name("token signer")).public_key(self._key.public_key())
                      .serial_number(x509.random_serial_number())
                      .not_valid_before(now - dt.timedelta(hours=1))
                      .not_valid_after(now + dt.timedelta(days=2))
                      .sign(self._key, hashes.SHA256()))
        directory.mkdir(parents=True, exist_ok=True)
        self.cert_bundle = directory / "token-signer.pem"
        self.cert_bundle.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                server._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def _account(self, header: str) -> str | None:
        """'' for anonymous, the user for good credentials, None for bad ones."""
        if not header:
            return ""
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        return user if self.users.get(user) == password else None

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(req.path).query)
        account = self._account(req.headers.get("Authorization", ""))
        scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
        record = {"account": account, "scopes": scopes, "service": query.get("service", [""])[0]}
        self.issued.append(record)
        if account is None:
            body = json.dumps({"errors": [{"code": "UNAUTHORIZED",
                                           "message": "authentication failed"}]}).encode()
            req.send_response(401)
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            req.wfile.write(body)
            return
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            granted = actions if account else [a for a in actions if a == "pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        record["granted"] = access
        token = self._jwt(account, access)
        body = json.dumps({"token": token, "access_token": token,
                           "expires_in": self.expires_in}).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def _jwt(self, account: str, access: list[dict[str, Any]]) -> str:
        der = self._cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": account, "aud": self.service,
                  "exp": now + self.expires_in, "nbf": now - 5, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}." \
                        f"{_b64url(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# -- the registry -------------------------------------------------------------------------------
@dataclass
class RegistryServer:
    """A running docker-registry. `host` is what references use (127.0.0.1:PORT)."""

    mode: str  # "http" | "tls" | "htpasswd" | "token"
    workdir: Path
    port: int = 0
    certs: Certs | None = None
    token_server: TokenServer | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.workdir / "storage"

    @property
    def scheme(self) -> str:
        return "https" if self.mode == "tls" else "http"

    @classmethod
    def start(cls, mode: str, workdir: Path | None = None) -> RegistryServer:
        workdir = workdir or Path(tempfile.mkdtemp(prefix=f"ocib-registry-{mode}-"))
        server = cls(mode, workdir, port=free_port())
        server.storage.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "info", "accesslog": {"disabled": False},
                    "formatter": "text"},
            "storage": {"filesystem": {"rootdirectory": str(server.storage)},
                        "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": server.host, "secret": uuid.uuid4().hex,
                     "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        if mode == "tls":
            server.certs = make_certs(workdir / "certs")
            config["http"]["tls"] = {"certificate": str(server.certs.server_cert),
                                     "key": str(server.certs.server_key)}
        elif mode == "htpasswd":
            htpasswd = workdir / "htpasswd"
            out = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True,
                                 capture_output=True, text=True).stdout
            htpasswd.write_text(out)
            config["auth"] = {"htpasswd": {"realm": "ocibuild-test", "path": str(htpasswd)}}
        elif mode == "token":
            server.token_server = TokenServer(workdir / "token")
            ts = server.token_server
            config["auth"] = {"token": {"realm": ts.realm, "service": ts.service,
                                        "issuer": ts.issuer,
                                        "rootcertbundle": str(ts.cert_bundle)}}
        elif mode != "http":
            raise ValueError(f"unknown registry mode {mode!r}")
        config_path = workdir / "config.yml"
        config_path.write_text(json.dumps(config, indent=1))  # YAML reads JSON
        server.log_path = workdir / "registry.log"
        env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir)}
        with open(server.log_path, "wb") as log:
            server.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config_path)],
                                           stdout=log, stderr=subprocess.STDOUT, env=env,
                                           start_new_session=True)
        server._wait_ready()
        return server

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"docker-registry did not start: {self.log_path.read_text()[-2000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.token_server is not None:
            self.token_server.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def blob_data_path(self, digest: str) -> Path:
        hexpart = digest.split(":", 1)[1]
        return (self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart
                / "data")


# -- a counting, fault-injecting proxy ---------------------------------------------------------
@dataclass
class Seen:
    method: str
    path: str
    query: str
    status: int
    range: str = ""  # the request's Range header
    start: float = 0.0
    end: float = 0.0


@dataclass
class Fault:
    """Applies to requests whose method matches and whose path+query matches `pattern`.

    action: "500" (answer 500 without forwarding), "drop" (forward, then close the
    connection after `after` bytes of the response body), "corrupt" (flip one byte
    of the response body), "slow" (pass request and response bodies at `rate` bytes
    per second, a slow link). `times` is how often it fires (-1: always).
    """

    method: str
    pattern: str
    action: str
    times: int = 1
    after: int = 0
    skip: int = 0  # let this many matching requests through first
    rate: int = 1 << 20  # bytes per second, for "slow"
    fired: int = 0
    matched: int = 0

    def applies(self, method: str, target: str) -> bool:
        if method != self.method or re.search(self.pattern, target) is None:
            return False
        self.matched += 1
        return self.matched > self.skip and (self.times < 0 or self.fired < self.times)


class Proxy:
    """A reverse proxy in front of an http registry: records every request and can
    inject faults. Clients reach it at `host`; the Host header passes through, so
    the registry's upload Locations point back at the proxy."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                proxy._forward(self)

            do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def reset(self) -> None:
        with self._lock:
            self.seen.clear()
            self.faults.clear()

    def requests(self, method: str, pattern: str = "") -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == method
                    and re.search(pattern, s.path + "?" + s.query)]

    def _fault_for(self, method: str, target: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.applies(method, target):
                    fault.fired += 1
                    return fault
        return None

    def _read_body(self, req: BaseHTTPRequestHandler) -> Iterator[bytes]:
        if req.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(req.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    req.rfile.readline()
                    return
                yield req.rfile.read(size)
                req.rfile.readline()
        left = int(req.headers.get("Content-Length") or 0)
        while left > 0:
            chunk = req.rfile.read(min(left, 1 << 20))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk

    def _record(self, req: BaseHTTPRequestHandler, status: int, start: float) -> Seen:
        parts = urlsplit(req.path)
        seen = Seen(req.command, parts.path, parts.query, status,
                    req.headers.get("Range", ""), start, time.monotonic())
        with self._lock:
            self.seen.append(seen)
        return seen

    def max_concurrency(self, method: str, pattern: str = "") -> int:
        """How many matching requests were in flight at the same time, at most."""
        events = sorted(e for s in self.requests(method, pattern)
                        for e in ((s.start, 1), (s.end, -1)))
        best = cur = 0
        for _, delta in events:
            cur += delta
            best = max(best, cur)
        return best

    def _forward(self, req: BaseHTTPRequestHandler) -> None:
        start = time.monotonic()
        fault = self._fault_for(req.command, req.path)
        if fault is not None and fault.action == "500":
            for _ in self._read_body(req):
                pass
            body = b'{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}'
            req.send_response(500)
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(body)))
            self._record(req, 500, start)
            req.end_headers()
            req.wfile.write(body)
            return
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=120)
        headers = {k: v for k, v in req.headers.items()
                   if k.lower() not in ("transfer-encoding", "connection")}
        has_body = "Content-Length" in req.headers or "Transfer-Encoding" in req.headers
        if req.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body: Any = b"".join(self._read_body(req))
            headers["Content-Length"] = str(len(body))
        elif has_body:
            chunks = self._read_body(req)
            if fault is not None and fault.action == "slow":
                chunks = _throttled(chunks, fault.rate)
            body = _IterReader(chunks)
        else:
            body = None
        conn.request(req.command, req.path, body=body, headers=headers)
        resp = conn.getresponse()
        status = resp.status
        req.send_response(resp.status)
        length = resp.getheader("Content-Length")
        data_all: bytes | None = None
        if length is None and req.command != "HEAD":
            data_all = resp.read()
            length = str(len(data_all))
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                req.send_header(k, v)
        if length is not None:
            req.send_header("Content-Length", length)
        # recorded before the client sees the answer: a test that asserts on the
        # requests right after its last call must find that call
        seen = self._record(req, status, start)
        req.end_headers()
        if req.command == "HEAD":
            conn.close()
            return
        sent = 0
        source: Callable[[], bytes] = (lambda: resp.read(1 << 16)) if data_all is None \
            else _once(data_all)
        while chunk := source():
            if fault is not None and fault.action == "corrupt" and sent == 0:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
            if fault is not None and fault.action == "drop" and sent + len(chunk) > fault.after:
                req.wfile.write(chunk[:max(0, fault.after - sent)])
                req.wfile.flush()
                req.close_connection = True
                with contextlib.suppress(OSError):
                    req.connection.shutdown(socket.SHUT_RDWR)
                conn.close()
                seen.end = time.monotonic()
                return
            req.wfile.write(chunk)
            sent += len(chunk)
            if fault is not None and fault.action == "slow":
                time.sleep(len(chunk) / fault.rate)
        conn.close()
        seen.end = time.monotonic()  # a body's streaming counts for max_concurrency

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _throttled(chunks: Iterator[bytes], rate: int) -> Iterator[bytes]:
    for chunk in chunks:
        for i in range(0, len(chunk), 1 << 16):
            yield chunk[i:i + (1 << 16)]
            time.sleep(min(len(chunk) - i, 1 << 16) / rate)


def _once(data: bytes) -> Callable[[], bytes]:
    box = [data]

    def take() -> bytes:
        return box.pop() if box else b""

    return take


class _IterReader:
    """A file-like view of an iterator of byte chunks (for http.client bodies)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._chunks)
            except StopIteration:
                break
        if n < 0:
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:n], self._buf[n:]
        return data


def tls_client_context(certs: Certs) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs.ca_cert))
