"""`--load`: stream the image, as a `docker load` tarball, into the docker daemon at
DOCKER_HOST (unix:// or plain tcp://; default unix:///var/run/docker.sock) through the
Engine API's `POST /images/load`. The body is sent chunked as it is made, so no layer is
ever held in memory; the daemon answers with JSON lines, any of which may be an error.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ocibuild.errors import OcibuildError, UsageError
from ocibuild.exporter.docker_archive import write_docker_archive
from ocibuild.oci.layout import ImageLayout

DEFAULT_HOST = "unix:///var/run/docker.sock"
_CONNECT_TIMEOUT = 10.0
_CHUNK = 1 << 20


class DockerLoadError(OcibuildError):
    """The docker daemon could not be reached or refused the image."""


@dataclass(frozen=True)
class DaemonAddress:
    """Where the daemon listens: a unix socket path, or a TCP host and port."""

    url: str  # as the user gave it, for messages
    socket_path: str | None = None
    host: str = ""
    port: int = 0

    @classmethod
    def parse(cls, docker_host: str | None) -> DaemonAddress:
        url = docker_host or DEFAULT_HOST
        parts = urlsplit(url)
        if parts.scheme == "unix":
            path = parts.netloc + parts.path  # unix:///p has an empty netloc
            if not path:
                raise UsageError(f"DOCKER_HOST={url}: no socket path")
            return cls(url, socket_path=path)
        if parts.scheme in ("tcp", "http"):
            if os.environ.get("DOCKER_TLS_VERIFY"):
                raise UsageError(f"--load: DOCKER_HOST={url} with DOCKER_TLS_VERIFY: TLS to "
                                 "the docker daemon is not supported; use its unix socket")
            if not parts.hostname:
                raise UsageError(f"DOCKER_HOST={url}: no host")
            return cls(url, host=parts.hostname, port=parts.port or 2375)
        raise UsageError(f"--load: DOCKER_HOST={url}: only unix:// and tcp:// daemons "
                         "are supported")

    def connect(self) -> http.client.HTTPConnection:
        """An open connection to the daemon (OSError when nothing answers)."""
        if self.socket_path is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=_CONNECT_TIMEOUT)
            conn.connect()
        else:
            conn = http.client.HTTPConnection("localhost", timeout=_CONNECT_TIMEOUT)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(_CONNECT_TIMEOUT)
                sock.connect(self.socket_path)
            except OSError:
                sock.close()
                raise
            conn.sock = sock
        assert conn.sock is not None
        conn.sock.settimeout(None)  # the daemon answers once it has stored every layer
        return conn


class _ChunkedBody:
    """A write-only stream sent as HTTP/1.1 chunks on `conn`, about 1 MiB each."""

    def __init__(self, conn: http.client.HTTPConnection) -> None:
        self._conn = conn
        self._pending = bytearray()

    def write(self, data: bytes) -> int:
        self._pending += data
        if len(self._pending) >= _CHUNK:
            self._send()
        return len(data)

    def _send(self) -> None:
        if self._pending:
            self._conn.send(b"%x\r\n" % len(self._pending) + self._pending + b"\r\n")
            self._pending.clear()

    def finish(self) -> None:
        self._send()
        self._conn.send(b"0\r\n\r\n")


def address_from_env() -> DaemonAddress:
    """The daemon DOCKER_HOST names, else the default socket (UsageError: unsupported)."""
    return DaemonAddress.parse(os.environ.get("DOCKER_HOST"))


def load_image(address: DaemonAddress, layout: ImageLayout, manifest_digest: str,
               image_names: Sequence[str]) -> tuple[str, ...]:
    """Load image `manifest_digest` of `layout` into the daemon at `address`, tagged with
    `image_names`. Returns what the daemon says it loaded ("name:tag", or "sha256:..."
    for an unnamed image)."""
    stored = ", ".join(image_names) or manifest_digest
    try:
        conn = address.connect()
    except OSError as exc:
        raise DockerLoadError(
            f"--load: cannot reach a docker daemon at {address.url}: "
            f"{exc.strerror or exc}. Start it, or point DOCKER_HOST at its socket; the image "
            f"was built and is in ocibuild's local store anyway ({stored})") from None
    try:
        conn.putrequest("POST", "/images/load?quiet=1")
        conn.putheader("Content-Type", "application/x-tar")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        body = _ChunkedBody(conn)
        try:
            write_docker_archive(layout, manifest_digest, body,  # type: ignore[arg-type]
                                 image_names)
            body.finish()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon stopped reading: its answer says why
        try:
            return _loaded(address, conn.getresponse())
        except (OSError, http.client.HTTPException) as exc:
            raise DockerLoadError(f"--load: the docker daemon at {address.url} closed the "
                                  f"connection while loading the image: {exc}") from None
    finally:
        conn.close()


def _loaded(address: DaemonAddress, response: http.client.HTTPResponse) -> tuple[str, ...]:
    if response.status != 200:
        text = response.read().decode(errors="replace")
        try:
            text = json.loads(text).get("message", text)
        except (ValueError, AttributeError):
            pass
        raise DockerLoadError(f"--load: the docker daemon at {address.url} refused the "
                              f"image ({response.status}): {text.strip()}")
    loaded: list[str] = []
    for line in response:
        if not line.strip():
            continue
        message = json.loads(line)
        if message.get("error"):
            raise DockerLoadError(f"--load: the docker daemon at {address.url} could not "
                                  f"load the image: {message['error']}")
        for said in str(message.get("stream", "")).splitlines():
            for prefix in ("Loaded image: ", "Loaded image ID: "):
                if said.startswith(prefix):
                    loaded.append(said.removeprefix(prefix).strip())
    return tuple(loaded)
