"""A fake registry that misbehaves on purpose, for fault tests.

`FaultRegistry` answers the distribution API's read side (`/v2/`, manifests, blobs)
from what a test puts in it, and records every request with its headers. Blobs are
produced by a function of chunks, so a test can serve a blob far larger than it
wants to hold in memory. `Rule`s, matched in order against `METHOD path?query`,
replace the normal answer:

- `status`: answer `status` with `body` and `headers` (a 400 with a hostile body,
  a 401 challenge, a token server's JSON);
- `hang`: accept the request and never answer (until the server closes);
- `reset`: close the connection without an answer;
- `truncate`: send the headers of the normal answer and `after` bytes of its body,
  then close;
- `stall`: the same, then send nothing more (until the server closes);
- `corrupt`: the normal answer with its first body byte flipped (a wrong digest);
- `slow`: the normal answer, its body sent at `rate` bytes per second.

A burst of 5xx is a `status` rule with `times=N`. The same class serves as a token
server (a `status` rule on its realm path) or any other endpoint a test needs on a
second port or address; a new fault is a new action in `_handle`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
Chunks = Callable[[], Iterable[bytes]]


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    chunks: Chunks  # called once per download

    @classmethod
    def of_bytes(cls, data: bytes) -> Blob:
        return cls(f"sha256:{hashlib.sha256(data).hexdigest()}", len(data), lambda: [data])

    @classmethod
    def of_chunks(cls, chunks: Chunks) -> Blob:
        """A blob whose digest and size are found by producing it once."""
        h = hashlib.sha256()
        size = 0
        for chunk in chunks():
            h.update(chunk)
            size += len(chunk)
        return cls(f"sha256:{h.hexdigest()}", size, chunks)

    def descriptor(self, media_type: str) -> dict[str, Any]:
        return {"mediaType": media_type, "digest": self.digest, "size": self.size}


@dataclass
class Rule:
    """Replaces the answer to requests whose `METHOD target` matches `pattern`."""

    pattern: str  # a regex searched in e.g. "GET /v2/a/b/manifests/1"
    action: str  # "status" | "hang" | "reset" | "truncate" | "stall" | "corrupt" | "slow"
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    after: int = 0  # for "truncate" and "stall": body bytes sent before the fault
    rate: int = 1 << 20  # for "slow": body bytes per second
    times: int = -1  # how often it fires (-1: always)
    fired: int = 0


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]


class FaultRegistry:
    """A registry on `address` (port chosen by the kernel); `host` is what references use."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.address = address
        self.rules: list[Rule] = []
        self.received: list[Received] = []
        self._manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self._blobs: dict[str, Blob] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                registry._handle(self)

            do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815

        self._httpd = ThreadingHTTPServer((address, 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.host = f"{address}:{self.port}"
        self.url = f"http://{self.host}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    # -- content ----------------------------------------------------------------------
    def add_blob(self, blob: Blob) -> Blob:
        with self._lock:
            self._blobs[blob.digest] = blob
        return blob

    def add_manifest(self, repository: str, tag: str, data: bytes,
                     media_type: str = OCI_MANIFEST) -> str:
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        with self._lock:
            self._manifests[(repository, tag)] = (data, media_type)
            self._manifests[(repository, digest)] = (data, media_type)
        return digest

    def add_image(self, repository: str, tag: str, config: Blob,
                  layers: Iterable[Blob] = ()) -> str:
        """An OCI image of `config` and uncompressed `layers`; its manifest digest."""
        layers = list(layers)
        for blob in (config, *layers):
            self.add_blob(blob)
        manifest = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": config.descriptor(OCI_CONFIG),
            "layers": [b.descriptor("application/vnd.oci.image.layer.v1.tar") for b in layers],
        }
        return self.add_manifest(repository, tag, json.dumps(manifest).encode())

    def add_rule(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def requests(self, pattern: str = "") -> list[Received]:
        with self._lock:
            return [r for r in self.received if re.search(pattern, f"{r.method} {r.path}")]

    # -- serving ----------------------------------------------------------------------
    def _rule_for(self, target: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if re.search(rule.pattern, target) and (rule.times < 0 or rule.fired < rule.times):
                    rule.fired += 1
                    return rule
        return None

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.received.append(Received(req.command, req.path, dict(req.headers.items())))
        length = int(req.headers.get("Content-Length") or 0)
        if length:
            req.rfile.read(length)
        target = f"{req.command} {req.path}"
        rule = self._rule_for(target)
        if rule is not None and rule.action == "hang":
            self._closing.wait()
            req.close_connection = True
            return
        if rule is not None and rule.action == "reset":
            self._abort(req)
            return
        if rule is not None and rule.action == "status":
            self._answer(req, rule.status, lambda: [rule.body], len(rule.body), rule.headers)
            return
        status, chunks, size, headers = self._normal(req)
        if rule is not None and rule.action in ("truncate", "stall"):
            self._answer(req, status, _first_bytes(chunks, rule.after), size, headers,
                         then_abort=rule.action == "truncate")
            if rule.action == "stall":
                req.wfile.flush()
                self._closing.wait()
                req.close_connection = True
            return
        if rule is not None and rule.action == "corrupt":
            chunks = _flipped(chunks)
        elif rule is not None and rule.action == "slow":
            chunks = _throttled(chunks, rule.rate)
        self._answer(req, status, chunks, size, headers)

    def _normal(self, req: BaseHTTPRequestHandler
                ) -> tuple[int, Chunks, int, dict[str, str]]:
        path = req.path.split("?", 1)[0]
        if path in ("/v2/", "/v2"):
            return 200, lambda: [b"{}"], 2, {"Content-Type": "application/json"}
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", path)
        with self._lock:
            if m and m.group(2) == "manifests" and (m.group(1), m.group(3)) in self._manifests:
                data, media_type = self._manifests[(m.group(1), m.group(3))]
                digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
                return 200, lambda: [data], len(data), {"Content-Type": media_type,
                                                         "Docker-Content-Digest": digest}
            if m and m.group(2) == "blobs" and m.group(3) in self._blobs:
                blob = self._blobs[m.group(3)]
                return 200, blob.chunks, blob.size, {
                    "Content-Type": "application/octet-stream",
                    "Docker-Content-Digest": blob.digest}
        body = json.dumps({"errors": [{"code": "NAME_UNKNOWN", "message": "not here"}]}).encode()
        return 404, lambda: [body], len(body), {"Content-Type": "application/json"}

    def _answer(self, req: BaseHTTPRequestHandler, status: int, chunks: Chunks, size: int,
                headers: dict[str, str], *, then_abort: bool = False) -> None:
        req.send_response(status)
        for name, value in headers.items():
            req.send_header(name, value)
        req.send_header("Content-Length", str(size))
        req.end_headers()
        if req.command == "HEAD":
            return
        try:
            for chunk in chunks():
                req.wfile.write(chunk)
        except OSError:  # the client went away: what a refusing client does
            req.close_connection = True
            return
        if then_abort:
            self._abort(req)

    @staticmethod
    def _abort(req: BaseHTTPRequestHandler) -> None:
        req.close_connection = True
        with contextlib.suppress(OSError):
            req.wfile.flush()
            req.connection.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_bytes(chunks: Chunks, limit: int) -> Chunks:
    def produce() -> Iterator[bytes]:
        left = limit
        for chunk in chunks():
            if left <= 0:
                return
            yield chunk[:left]
            left -= len(chunk)
    return produce


def _flipped(chunks: Chunks) -> Chunks:
    def produce() -> Iterator[bytes]:
        first = True
        for chunk in chunks():
            if first and chunk:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                first = False
            yield chunk
    return produce


def _throttled(chunks: Chunks, rate: int) -> Chunks:
    def produce() -> Iterator[bytes]:
        step = max(1, min(rate // 10, 1 << 16))
        for chunk in chunks():
            for i in range(0, len(chunk), step):
                yield chunk[i:i + step]
                time.sleep(len(chunk[i:i + step]) / rate)
    return produce


def token_answer(token: str = "fake-token") -> Rule:
    """A token server's answer to any request on `/token`."""
    body = json.dumps({"token": token, "expires_in": 300}).encode()
    return Rule(r" /token", "status", 200, body, {"Content-Type": "application/json"})


def bearer_challenge(realm: str, service: str = "fault-registry") -> Rule:
    """A 401 asking for a bearer token from `realm`, on every request to the API."""
    return Rule(r"^(GET|HEAD) /v2/", "status", 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                {"Content-Type": "application/json",
                 "WWW-Authenticate": f'Bearer realm="{realm}",service="{service}"'})
