from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocibuild.oci import digest as _digest
from ocibuild.oci.layer import write_layer_from_dir

SDE = 1_700_000_000


def _data_layer() -> bytes:
    """/data with files of several owners and kinds (uid 1000 needs no root to write)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644,
                uid: int = 1000, gid: int = 1000, link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, SDE
            info.linkname = link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("data/", tarfile.DIRTYPE, mode=0o755, uid=0, gid=0)
        add("data/file", data=b"content\n")
        add("data/old", data=b"old\n")
        add("data/root-owned", data=b"r\n", uid=0, gid=0)
        add("data/oldlink", tarfile.SYMTYPE, link="file", mode=0o777)
        add("data/tree/", tarfile.DIRTYPE, mode=0o750)
        add("data/tree/a", data=b"a\n")
        add("data/tree/deeper/", tarfile.DIRTYPE, mode=0o755)
        add("data/tree/deeper/b", data=b"b\n", mode=0o600)
    return buf.getvalue()


@pytest.fixture(scope="session")
def base_layers(busybox_rootfs: Path) -> Iterator[Path]:
    """Blobs of a two-layer base image (busybox, then /data) in a world-readable dir."""
    base = Path(tempfile.mkdtemp(prefix="ocib-snapbase-", dir="/tmp"))
    os.chmod(base, 0o755)
    with open(base / "busybox.tar.gz", "wb") as f:
        info = write_layer_from_dir(busybox_rootfs, f, source_date_epoch=SDE)
    data = _data_layer()
    (base / "data.tar").write_bytes(data)
    layers = [
        {"file": "busybox.tar.gz", "digest": info.digest, "size": info.size,
         "media_type": info.media_type, "diff_id": info.diff_id},
        {"file": "data.tar", "digest": _digest.of_bytes(data), "size": len(data),
         "media_type": "application/vnd.oci.image.layer.v1.tar",
         "diff_id": _digest.of_bytes(data)},
    ]
    (base / "layers.json").write_text(json.dumps(layers))
    for p in base.iterdir():
        os.chmod(p, 0o644)
    yield base
    shutil.rmtree(base)
