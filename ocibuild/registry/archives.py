"""Images from files, without a registry: OCI layouts and `docker save` archives.

Both copy the chosen image's blobs into a destination layout (the store),
verifying every digest on the way, so a build reads only verified content.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from isal import igzip

from ocibuild.errors import OcibuildError, printable
from ocibuild.oci import digest as _digest
from ocibuild.oci import limits, mediatypes
from ocibuild.oci.config import ImageConfig
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.image import Image, load_image
from ocibuild.oci.layout import ImageLayout, LayoutError
from ocibuild.oci.manifest import Manifest
from ocibuild.oci.platform import Platform


def split_layout_ref(text: str) -> tuple[Path, str | None]:
    """`PATH[:TAG|@DIGEST]` → (path, tag or digest or None)."""
    if "@" in text:
        path, _, digest = text.rpartition("@")
        if not _digest.is_digest(digest):
            raise OcibuildError(f"oci-layout://{text}: {digest!r} is not a sha256 digest")
        return Path(path), digest
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash and colon > 0:
        return Path(text[:colon]), text[colon + 1:] or None
    return Path(text), None


def copy_image(src: ImageLayout, image: Image, dest: ImageLayout) -> None:
    """Copy config, layers and manifest of `image` from `src` to `dest` (verified)."""
    for desc in (image.manifest.config, *image.manifest.layers):
        if dest.has_blob(desc.digest):
            continue
        with src.open_blob(desc.digest, desc.size) as reader:
            dest.put_stream(reader, desc.digest, desc.size)  # type: ignore[arg-type]
    if not dest.has_blob(image.digest):
        dest.put_bytes(limits.read_blob(src, image.digest, limits.MANIFEST, str(src.path),
                                        image.descriptor.size))


def image_from_layout(text: str, dest: ImageLayout, platform: Platform | None = None) -> Image:
    """`oci-layout://PATH[:TAG|@DIGEST]` (scheme already removed) copied into `dest`."""
    path, ref = split_layout_ref(text)
    try:
        src = ImageLayout.open(path)
        image = load_image(src, ref, platform)
    except LayoutError as exc:
        raise OcibuildError(f"oci-layout://{text}: {exc.message}") from None
    copy_image(src, image, dest)
    return image


class _DiffIdHasher:
    """Hashes the uncompressed stream of a (possibly gzip) layer as it is written."""

    def __init__(self, compressed: bool) -> None:
        self.hash = hashlib.sha256()
        self._gz = igzip.IgzipDecompressor() if compressed else None

    def feed(self, chunk: bytes) -> None:
        if self._gz is None:
            self.hash.update(chunk)
            return
        self.hash.update(self._gz.decompress(chunk))

    @property
    def digest(self) -> str:
        return f"sha256:{self.hash.hexdigest()}"


def _member(tar: tarfile.TarFile, name: str, where: str) -> BinaryIO:
    clean = str(PurePosixPath(name))
    try:
        member = tar.getmember(clean)
    except KeyError:
        raise OcibuildError(f"{where}: the archive has no {name!r}") from None
    f = tar.extractfile(member)
    if f is None:
        raise OcibuildError(f"{where}: {name!r} is not a regular file")
    return f  # type: ignore[return-value]


def _choose(entries: list[dict[str, Any]], wanted: str | None, where: str) -> dict[str, Any]:
    if wanted:
        for e in entries:
            tags = e.get("RepoTags") or []
            if wanted in tags or any(t.endswith("/" + wanted) for t in tags):
                return e
        raise OcibuildError(f"{where}: no image tagged {wanted!r} in the archive")
    if len(entries) != 1:
        tags = [t for e in entries for t in e.get("RepoTags") or []]
        names = printable(", ".join(tags[:10]) + (", …" if len(tags) > 10 else "")) \
            or "untagged"
        raise OcibuildError(f"{where}: {len(entries)} images in the archive ({names}); "
                            "name one with docker-archive://FILE:REPO:TAG")
    return entries[0]


def image_from_docker_archive(text: str, dest: ImageLayout) -> Image:
    """`docker-archive://FILE.tar[:NAME:TAG]` (scheme removed) copied into `dest`.

    Layers are stored as they are in the archive (usually uncompressed tar) and each
    one's uncompressed digest must equal the diff_id the config lists.
    """
    path_text, wanted = text, None
    if not Path(text).exists() and ":" in text:
        path_text, _, wanted = text.partition(":")
    path = Path(path_text)
    where = f"docker-archive://{text}"
    try:
        tar = tarfile.open(path, "r:")
    except (OSError, tarfile.TarError) as exc:
        raise OcibuildError(f"{where}: not a readable tar archive: {exc}") from None
    with tar:
        try:
            entries = json.loads(limits.read_capped(_member(tar, "manifest.json", where),
                                                    limits.ARCHIVE_MANIFEST, where))
        except ValueError:
            raise OcibuildError(f"{where}: manifest.json is not valid JSON") from None
        if not isinstance(entries, list) or not entries:
            raise OcibuildError(f"{where}: manifest.json lists no image")
        entry = _choose(entries, wanted, where)
        config_bytes = limits.read_capped(_member(tar, entry["Config"], where),
                                          limits.IMAGE_CONFIG, where, entry["Config"])
        config = ImageConfig.from_bytes(config_bytes)
        layer_names = entry.get("Layers") or []
        if len(layer_names) != len(config.diff_ids):
            raise OcibuildError(f"{where}: {len(layer_names)} layers but the config lists "
                                f"{len(config.diff_ids)} diff_ids")
        layers = [_store_layer(tar, name, diff_id, dest, where)
                  for name, diff_id in zip(layer_names, config.diff_ids, strict=True)]
    config_desc = Descriptor(mediatypes.OCI_CONFIG, dest.put_bytes(config_bytes),
                             len(config_bytes))
    manifest = Manifest(config=config_desc, layers=tuple(layers))
    desc = dest.put_manifest(manifest)
    desc = Descriptor(desc.media_type, desc.digest, desc.size, platform=config.platform)
    return Image(desc, manifest, config)


def _store_layer(tar: tarfile.TarFile, name: str, diff_id: str, dest: ImageLayout,
                 where: str) -> Descriptor:
    f = _member(tar, name, where)
    head = f.read(2)
    compressed = head == b"\x1f\x8b"
    media_type = mediatypes.OCI_LAYER_GZIP if compressed else mediatypes.OCI_LAYER
    hasher = _DiffIdHasher(compressed)
    with dest.blob_writer() as writer:
        chunk = head
        while chunk:
            writer.write(chunk)
            hasher.feed(chunk)
            chunk = f.read(_digest.CHUNK)
        if hasher.digest != diff_id:
            raise _digest.DigestMismatchError(
                f"{where}: layer {name} has content digest {hasher.digest}, "
                f"the config says {diff_id}")
        blob = writer.commit()
    return Descriptor(media_type, blob.digest, blob.size)
