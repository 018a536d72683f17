"""A build secret reaches the step and nothing else: not a layer, the store, the log or
the metadata file."""

from __future__ import annotations

import gzip
import os
import uuid
from pathlib import Path

import zstandard

from tests.build import imagefs
from tests.build.conftest import Builder, write_context


def _holds(path: Path, secret: bytes) -> bool:
    """Whether the file's bytes, or its decompressed bytes, contain the secret."""
    raw = path.read_bytes()
    if secret in raw:
        return True
    if raw[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as f:
            return secret in f.read()
    if raw[:4] == b"\x28\xb5\x2f\xfd":
        with open(path, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as z:
            return secret in z.read()
    return False


def _files(*roots: Path) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        if root.is_file():
            found.append(root)
            continue
        for dirpath, _, names in os.walk(root):
            found += [Path(dirpath, n) for n in names if Path(dirpath, n).is_file()
                      and not Path(dirpath, n).is_symlink()]
    return found


def test_secret_value_is_nowhere_in_outputs_store_log_or_metadata(builder: Builder) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}".encode()
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest\n"
        "RUN --mount=type=secret,id=tok sh -c 'cat /run/secrets/tok; "
        "cp /run/secrets/tok /tmp/copy && wc -c < /tmp/copy > /len && rm /tmp/copy'\n"
        "RUN --mount=type=secret,id=tok,env=TOK sh -c 'echo \"token $TOK\"; "
        "printf %s \"$TOK\" | wc -c > /envlen'\n")}, builder.user)
    secret_file = builder.tmp / "tok.txt"
    secret_file.write_bytes(secret)
    os.chown(secret_file, builder.user.uid, builder.user.gid)
    os.chmod(secret_file, 0o600)
    out, meta = builder.tmp / "out", builder.tmp / "meta.json"
    proc, _ = builder.build("--secret", f"id=tok,src={secret_file}", "-o",
                            f"type=oci,dest={out}", "--metadata-file", meta, ctx)

    image = imagefs.load(out)
    length = str(len(secret)).encode()
    assert image.files["len"].data.strip() == length  # type: ignore[union-attr]
    assert image.files["envlen"].data.strip() == length  # type: ignore[union-attr]
    log = (proc.stdout + proc.stderr).encode()
    assert b"token ****" in log  # the step printed it; the log shows a mask
    assert secret not in log
    scanned = _files(out, builder.root, meta)
    assert len(scanned) > 5
    assert [p for p in scanned if _holds(p, secret)] == []
