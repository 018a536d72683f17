"""ADD of a remote URL as BuildKit does it (issue 15, item 11).

frontend/dockerfile/dockerfile2llb/convert_copy.go: "Resources from remote URLs are not
decompressed" (the copy of an HTTP source never sets AttemptUnpack unless --unpack asks),
and the file is named `path.Base` of the URL's (decoded) path, "__unnamed__" when that
is "." or "/"; source/util/pathutil.SafeFileName then applies. Query and #fragment are
never part of the name.
"""

from __future__ import annotations

import gzip
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator

import pytest

from tests.build import imagefs
from tests.build.conftest import Builder
from tests.build.table import Row, build_rows, text


def _tar_gz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("inner.txt")
        info.size = 6
        tf.addfile(info, io.BytesIO(b"inner\n"))
    return gzip.compress(buf.getvalue(), mtime=0)


BODIES = {"/pkg/arch.tar.gz": _tar_gz(), "/pkg/notes.txt": b"notes\n",
          "/pkg/data.bin": b"data\n", "/": b"index\n", "/a b.txt": b"spaced\n"}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = BODIES.get(self.path.split("?", 1)[0].replace("%20", " "))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _not_extracted(img: imagefs.Image) -> None:
    entry = img.files["dl/arch.tar.gz"]
    assert entry.info.isreg() and entry.data == BODIES["/pkg/arch.tar.gz"]
    assert "dl/inner.txt" not in img.files


def _names(img: imagefs.Image) -> None:
    assert text(img, "dl/notes.txt") == "notes\n"
    assert text(img, "dl/data.bin") == "data\n"
    assert text(img, "dl/root/__unnamed__") == "index\n"
    assert text(img, "dl/a b.txt") == "spaced\n"
    assert not any("#" in name or "?" in name for name in img.files)


def _renamed(img: imagefs.Image) -> None:
    assert text(img, "named") == "data\n"


@pytest.fixture(scope="module")
def built(module_builder: Builder, server: str) -> dict[str, imagefs.Image | str]:
    rows = [
        Row("not-extracted", f"FROM busybox:latest\nADD {server}/pkg/arch.tar.gz /dl/\n",
            _not_extracted),
        Row("names", "FROM busybox:latest\n"
            f"ADD {server}/pkg/notes.txt?x=1#frag /dl/\n"
            f"ADD {server}/pkg/data.bin#section /dl/\n"
            f"ADD {server}/ /dl/root/\n"
            f"ADD {server}/a%20b.txt /dl/\n", _names),
        Row("renamed", f"FROM busybox:latest\nADD {server}/pkg/data.bin#x /named\n",
            _renamed),
    ]
    return {row.id: image for row, image in build_rows(module_builder, rows, "add-url")}


@pytest.mark.parametrize("row_id", ["not-extracted", "names", "renamed"])
def test_add_url(row_id: str, built: dict[str, imagefs.Image | str]) -> None:
    image = built[row_id]
    assert not isinstance(image, str), f"the build failed: {image}"
    check = {"not-extracted": _not_extracted, "names": _names, "renamed": _renamed}[row_id]
    check(image)
