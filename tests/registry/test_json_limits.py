"""Oversized JSON documents from files: an OCI layout's image config, a docker
archive's config and manifest.json are refused with the cap in the message, not read
whole (nor, as the archive's config was, cut short and parsed)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from ocibuild.errors import OcibuildError
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.manifest import Manifest
from ocibuild.registry.resolve import resolve_source

BIG = 20 << 20  # over the 16 MiB image config cap and the 4 MiB manifest cap


def _padded_config(size: int) -> bytes:
    head = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},'
    head += b'"padding":"'
    return head + b"A" * (size - len(head) - 2) + b'"}'


class _Store:
    def __init__(self, path: Path) -> None:
        self.layout = ImageLayout.init(path)

    def tag(self, name: str, desc: Descriptor) -> None:
        self.layout.tag(name, desc)


def test_an_oversized_config_in_an_oci_layout_is_refused(tmp_path: Path) -> None:
    src = ImageLayout.init(tmp_path / "src")
    config = _padded_config(BIG)
    config_desc = Descriptor(mediatypes.OCI_CONFIG, src.put_bytes(config), len(config))
    src.tag("big", src.put_manifest(Manifest(config=config_desc, layers=())))
    store = _Store(tmp_path / "store")
    with pytest.raises(OcibuildError) as caught:
        resolve_source(f"oci-layout://{src.path}:big", store)
    message = caught.value.message
    assert str(src.path) in message and config_desc.digest in message, message
    assert "16 MiB" in message, message
    assert not store.layout.has_blob(config_desc.digest)


def _archive(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_an_oversized_config_in_a_docker_archive_is_refused(tmp_path: Path) -> None:
    manifest = json.dumps([{"Config": "big.json", "RepoTags": ["big:1"], "Layers": []}])
    archive = _archive(tmp_path / "big.tar", {"manifest.json": manifest.encode(),
                                              "big.json": _padded_config(BIG)})
    store = _Store(tmp_path / "store")
    with pytest.raises(OcibuildError) as caught:
        resolve_source(f"docker-archive://{archive}", store)
    message = caught.value.message
    assert str(archive) in message and "big.json" in message and "16 MiB" in message, message


def test_an_oversized_docker_archive_manifest_is_refused(tmp_path: Path) -> None:
    entry = {"Config": "c.json", "RepoTags": ["x:1"], "Layers": []}
    manifest = json.dumps([entry] * (BIG // len(json.dumps(entry)))).encode()
    archive = _archive(tmp_path / "many.tar", {"manifest.json": manifest})
    with pytest.raises(OcibuildError) as caught:
        resolve_source(f"docker-archive://{archive}", _Store(tmp_path / "store"))
    message = caught.value.message
    assert "manifest.json" in message and "4 MiB" in message, message


def test_an_oversized_layout_index_is_refused(tmp_path: Path) -> None:
    src = ImageLayout.init(tmp_path / "src")
    with open(src.path / "index.json", "wb") as f:  # a valid index, padded past 64 MiB
        f.write(b'{"schemaVersion":2,"manifests":[],"padding":"')
        for _ in range(65):
            f.write(b" " * (1 << 20))
        f.write(b'"}')
    with pytest.raises(OcibuildError) as caught:
        resolve_source(f"oci-layout://{src.path}", _Store(tmp_path / "store"))
    message = caught.value.message
    assert str(src.path) in message and "index.json" in message, message
    assert "64 MiB" in message, message
