"""`ocibuild build` outputs and inputs end to end: docker archive, metadata file, ADD of
a URL with --checksum, --ssh default."""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import tarfile
import threading
from collections.abc import Iterator

import pytest

from tests.build import imagefs
from tests.build.conftest import Builder, image_digest, write_context

PAYLOAD = b"served over http\n"


def test_docker_archive_and_metadata_file(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {
        "Dockerfile": "FROM busybox:latest\nCOPY hello.txt /\nCMD [\"cat\", \"/hello.txt\"]\n",
        "hello.txt": "hello\n"}, builder.user)
    archive, meta, iid = builder.tmp / "img.tar", builder.tmp / "meta.json", builder.tmp / "iid"
    proc, _ = builder.build("-t", "demo/hello:1", "-o", f"type=docker,dest={archive}",
                            "--metadata-file", meta, "--iidfile", iid, ctx)
    data = json.loads(meta.read_text())
    assert data["containerimage.digest"] == image_digest(proc.stderr)
    assert data["containerimage.config.digest"].startswith("sha256:")
    assert data["containerimage.descriptor"]["digest"] == data["containerimage.digest"]
    assert iid.read_text().strip() == proc.stdout.strip()
    with tarfile.open(archive) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["demo/hello:1"]
    # docker's image ID is the config digest: the same the metadata file gives
    assert data["containerimage.config.digest"].split(":")[1] in manifest[0]["Config"]
    inspected = subprocess.run(["skopeo", "inspect", "--config", f"docker-archive:{archive}"],
                               capture_output=True, text=True, check=True)
    assert json.loads(inspected.stdout)["config"]["Cmd"] == ["cat", "/hello.txt"]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        if self.path != "/files/payload.txt":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.send_header("Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT")
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_add_url_with_checksum(builder: Builder, http_url: str) -> None:
    good = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
    url = f"{http_url}/files/payload.txt"
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        f"FROM busybox:latest\nADD --checksum={good} {url} /dl/\n")}, builder.user)
    out = builder.tmp / "out"
    builder.build("-o", f"type=oci,dest={out}", ctx)
    image = imagefs.load(out)
    entry = image.files["dl/payload.txt"]
    assert entry.data == PAYLOAD
    assert entry.info.mode & 0o777 == 0o600  # as docker: downloads are 0600
    assert entry.info.mtime == 1_700_000_000  # from Last-Modified

    bad = "sha256:" + "0" * 64
    (ctx / "Dockerfile").write_text(f"FROM busybox:latest\nADD --checksum={bad} {url} /dl/\n")
    proc, _ = builder.build(ctx, check=False)
    assert proc.returncode != 0
    assert "checksum mismatch" in proc.stderr and good in proc.stderr


def test_ssh_default_forwards_the_agent_socket(builder: Builder) -> None:
    sock = builder.tmp / "agent.sock"
    agent = builder.user.popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if sock.exists():
                break
            threading.Event().wait(0.01)
        ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
            "FROM busybox:latest\n"
            "RUN --mount=type=ssh sh -c 'test -S \"$SSH_AUTH_SOCK\" && "
            "echo \"$SSH_AUTH_SOCK\" > /sock'\n")}, builder.user)
        out = builder.tmp / "out"
        builder.build("--ssh", "default", "-o", f"type=oci,dest={out}", ctx,
                      env={"SSH_AUTH_SOCK": str(sock)})
        image = imagefs.load(out)
        assert image.files["sock"].data == b"/run/buildkit/ssh_agent.0\n"
        assert "run/buildkit/ssh_agent.0" not in image.files

        proc, _ = builder.build("--no-cache", ctx, check=False)  # no --ssh: not there
        assert proc.returncode != 0
    finally:
        agent.terminate()
        agent.wait()
