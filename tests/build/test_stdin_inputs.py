"""`-` reads the build's inputs from stdin, as `docker build` does: `-f -` the
Dockerfile; a `-` context a tar archive (plain or compressed) or a lone Dockerfile."""

from __future__ import annotations

import gzip
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.build.conftest import Builder, write_context
from tests.support.paths import OCIBUILD


def _build(builder: Builder, stdin: bytes, *args: str) -> subprocess.CompletedProcess[str]:
    proc = builder.user.run([OCIBUILD, "--root", builder.root, "build", "--progress", "plain",
                             *args], cwd=builder.tmp, input=stdin.decode("latin-1"),
                            encoding="latin-1")
    return proc


def _tar(files: dict[str, str], names: dict[str, str] | None = None) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo((names or {}).get(name, name))
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def test_dockerfile_from_stdin_with_a_context_directory(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"a.txt": "from the directory\n"}, builder.user)
    proc = _build(builder, b"FROM busybox:latest\nCOPY a.txt /a\nRUN cat /a\n", "-f", "-",
                  str(ctx))
    assert proc.returncode == 0, proc.stderr
    assert "from the directory" in proc.stderr


def test_a_lone_dockerfile_on_stdin_builds_with_an_empty_context(builder: Builder) -> None:
    proc = _build(builder, b"FROM busybox:latest\nRUN echo no context needed\n", "-")
    assert proc.returncode == 0, proc.stderr
    assert "no context needed" in proc.stderr
    proc = _build(builder, b"FROM busybox:latest\nCOPY a.txt /a\n", "-")
    assert proc.returncode == 1 and "a.txt: not found in the build context" in proc.stderr


@pytest.mark.parametrize("compress", [False, True])
def test_a_context_archive_on_stdin(builder: Builder, compress: bool) -> None:
    data = _tar({"Dockerfile": "FROM busybox:latest\nCOPY a.txt /a\nRUN cat /a\n",
                 "sub/Other": "FROM busybox:latest\nRUN echo other dockerfile\n",
                 "a.txt": "from the archive\n"})
    data = gzip.compress(data) if compress else data
    proc = _build(builder, data, "-t", "fromtar:1", "-")
    assert proc.returncode == 0, proc.stderr
    assert "from the archive" in proc.stderr and "fromtar:1" in proc.stderr
    proc = _build(builder, data, "-f", "sub/Other", "-")
    assert proc.returncode == 0 and "other dockerfile" in proc.stderr, proc.stderr
    proc = _build(builder, data, "-f", "nope", "-")
    assert proc.returncode == 2
    assert "-f nope: not found in the build context from stdin" in proc.stderr


def test_stdin_cannot_be_both_and_a_hostile_archive_is_refused(builder: Builder) -> None:
    proc = _build(builder, b"FROM busybox:latest\n", "-f", "-", "-")
    assert proc.returncode == 2 and "cannot both come from stdin" in proc.stderr
    evil = _tar({"Dockerfile": "FROM busybox:latest\n", "x": "out\n"},
                names={"x": "../../escaped.txt"})
    proc = _build(builder, evil, "-")
    assert proc.returncode == 2, proc.stderr
    assert "'..' would leave the root" in proc.stderr and "Traceback" not in proc.stderr
    assert not any(Path(d, "escaped.txt").exists() for d in ("/tmp", "/var/tmp"))
