"""Git remotes for tests: repositories made with the real git, served by `git daemon`
(git://) and by `git http-backend` behind a small HTTP server (smart HTTP) that counts
the requests that fetch objects."""

from __future__ import annotations

import gzip
import http.server
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "HOME": "/nonexistent",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` (as the test's user); its output."""
    return subprocess.run(["git", "-C", str(repo), *args], env=_ENV, check=True,
                          capture_output=True, text=True).stdout.strip()


def make_repo(path: Path, files: dict[str, str], *, branch: str = "main") -> str:
    """A repository at `path` (the served directory) with one commit; its hash."""
    path.mkdir(parents=True)
    git(path, "init", "--quiet", "-b", branch)
    return commit(path, files, "first")


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    """Write `files` (relative path -> content) and commit them; the new commit's hash."""
    for rel, content in files.items():
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("git daemon exited at start")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("git daemon did not start")


@contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    """`git daemon` serving every repository under `base`; yields git://127.0.0.1:PORT."""
    port = _free_port()
    proc = subprocess.Popen(["git", "daemon", "--export-all", f"--base-path={base}",
                             "--listen=127.0.0.1", f"--port={port}", "--reuseaddr",
                             "--informative-errors", str(base)], env=_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(port, proc)
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class HttpRemote:
    """A running smart-HTTP server: its base URL and what it was asked."""

    url: str
    fetches: list[str] = field(default_factory=list)  # repository path per object fetch
    listings: list[str] = field(default_factory=list)  # ref listings (ls-remote)
    auth_header: str = ""  # when set, requests without this Authorization get 401
    refused: int = 0


def _handler(base: Path, remote: HttpRemote) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._serve(b"")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._serve(body)

        def _serve(self, body: bytes) -> None:
            if remote.auth_header and self.headers.get("Authorization") != remote.auth_header:
                remote.refused += 1
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            self._count(path, query, body)
            env = {**_ENV, "GIT_PROJECT_ROOT": str(base), "GIT_HTTP_EXPORT_ALL": "1",
                   "PATH_INFO": path, "QUERY_STRING": query,
                   "REQUEST_METHOD": self.command, "REMOTE_ADDR": "127.0.0.1",
                   "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                   "CONTENT_LENGTH": str(len(body))}
            for header, var in (("Git-Protocol", "GIT_PROTOCOL"),
                                ("Content-Encoding", "HTTP_CONTENT_ENCODING")):
                if self.headers.get(header):
                    env[var] = self.headers[header]
            out = subprocess.run(["git", "http-backend"], input=body, env=env,
                                 capture_output=True, check=False).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            status, headers = 200, []
            for line in head.split(b"\r\n"):
                name, _, value = line.decode().partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _count(self, path: str, query: str, body: bytes) -> None:
            repo = path.rsplit("/", 1)[0]
            if self.command == "GET" and "service=git-upload-pack" in query \
                    and "version=2" not in (self.headers.get("Git-Protocol") or ""):
                remote.listings.append(repo)  # protocol v0: the listing is this response
                return
            if self.command != "POST" or not path.endswith("/git-upload-pack"):
                return
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if b"command=ls-refs" in body:
                remote.listings.append(repo)
            elif b"command=fetch" in body or b"want " in body:
                remote.fetches.append(repo)

    return Handler


@contextmanager
def smart_http(base: Path, auth_header: str = "") -> Iterator[HttpRemote]:
    """`git http-backend` serving every repository under `base` over HTTP on 127.0.0.1."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    remote = HttpRemote(f"http://127.0.0.1:{server.server_address[1]}", auth_header=auth_header)
    server.RequestHandlerClass = _handler(base, remote)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield remote
    finally:
        server.shutdown()
        server.server_close()
