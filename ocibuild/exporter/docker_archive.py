"""`-o type=docker`: a docker-archive tar (what `docker save` writes; `docker load`,
`podman load` and `skopeo docker-archive:` read it).

    manifest.json            [{"Config": ..., "RepoTags": [...], "Layers": [...]}]
    <config hex>.json        the image config
    <diffID hex>/layer.tar   each layer, uncompressed (its sha256 is the diffID)

Layers are stored uncompressed because that is what every reader accepts (docker 20.10
does not read zstd). A tar header needs the size first, so each layer is decompressed
twice: once to count, once to copy; both passes stream in bounded memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ocibuild.atomic import atomic_file, sweep_beside
from ocibuild.cache import names
from ocibuild.errors import DigestMismatchError
from ocibuild.oci import digest as _digest
from ocibuild.oci.compression import open_uncompressed
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.manifest import Manifest

if TYPE_CHECKING:
    from ocibuild.progress.transfer import StepProgress


class _Hashing(io.RawIOBase):
    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        self.hash.update(data)
        return data


def _uncompressed_size(layout: ImageLayout, digest: str) -> int:
    with layout.open_blob(digest) as blob:
        stream = open_uncompressed(blob)  # type: ignore[arg-type]
        size = 0
        while chunk := stream.read(_digest.CHUNK):
            size += len(chunk)
        return size


def _info(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = size
        info.mode = 0o644
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def _add_layer(tar: tarfile.TarFile, layout: ImageLayout, digest: str, diff_id: str) -> str:
    folder = _digest.hex_of(diff_id)
    name = f"{folder}/layer.tar"
    size = _uncompressed_size(layout, digest)
    tar.addfile(_info(folder, directory=True))
    with layout.open_blob(digest) as blob:
        hashing = _Hashing(open_uncompressed(blob))  # type: ignore[arg-type]
        tar.addfile(_info(name, size), hashing)  # type: ignore[arg-type]
    actual = f"sha256:{hashing.hash.hexdigest()}"
    if actual != diff_id:
        raise DigestMismatchError(f"layer {digest}: uncompressed digest {actual}, "
                                  f"but the image config says {diff_id}")
    return name


def export_docker_archive(layout: ImageLayout, manifest_digest: str, dest: Path,
                          image_names: Sequence[str], progress: StepProgress | None = None
                          ) -> None:
    """Write the image `manifest_digest` of `layout` to `dest` (atomically); its bytes
    are shown under `progress` (the uncompressed size is not known before)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    sweep_beside(dest)
    with atomic_file(dest) as f:
        if progress is None:
            write_docker_archive(layout, manifest_digest, f, image_names)
            return
        from ocibuild.exporter.oci import TARBALL
        from ocibuild.progress.transfer import counting

        shown = progress.transfer(TARBALL, 0, estimated=True)
        write_docker_archive(layout, manifest_digest, counting(f, shown), image_names)
        shown.finish()


def write_docker_archive(layout: ImageLayout, manifest_digest: str, out: BinaryIO,
                         image_names: Sequence[str]) -> None:
    """Stream the docker-archive tar of image `manifest_digest` to `out` (written in
    order, never seeked, so `out` may be a socket)."""
    manifest = Manifest.from_bytes(layout.read_blob(manifest_digest))
    config_bytes = layout.read_blob(manifest.config.digest)
    diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"]
    config_name = f"{_digest.hex_of(manifest.config.digest)}.json"
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        layer_names: list[str] = []
        written: dict[str, str] = {}
        for layer, diff_id in zip(manifest.layers, diff_ids, strict=True):
            if diff_id not in written:
                written[diff_id] = _add_layer(tar, layout, layer.digest, diff_id)
            layer_names.append(written[diff_id])
        _add_bytes(tar, config_name, config_bytes)
        entry = {
            "Config": config_name,
            "RepoTags": [names.familiar_name(n) for n in image_names if "@" not in n],
            "Layers": layer_names,
        }
        _add_bytes(tar, "manifest.json", json.dumps([entry]).encode())
