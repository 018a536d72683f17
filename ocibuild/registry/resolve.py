"""What the build engine calls to turn a FROM or a --build-context into an image.

`resolve_source` understands

- `docker-image://REF` and plain references: pulled into the store (a reference
  with a digest whose blobs are all in the store needs no network);
- `oci-layout://PATH[:TAG|@DIGEST]`: an OCI image layout on disk;
- `docker-archive://FILE.tar[:NAME:TAG]`: a `docker save` archive.

The last two never touch the network: air-gapped builds use them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ocibuild.errors import UsageError
from ocibuild.oci import limits
from ocibuild.oci.config import ImageConfig
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.image import Image, load_image
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.manifest import Manifest, parse_manifest_or_index
from ocibuild.oci.platform import Platform
from ocibuild.reference import Reference, parse_reference

if TYPE_CHECKING:  # the HTTP client loads only when a source needs the network
    from ocibuild.progress.transfer import StepProgress
    from ocibuild.registry.blob_sources import BlobSources
    from ocibuild.registry.client import ClientPool

DOCKER_IMAGE = "docker-image://"
OCI_LAYOUT = "oci-layout://"
DOCKER_ARCHIVE = "docker-archive://"


class StoreLike(Protocol):
    """The part of `ocibuild.cache.store.Store` a source resolver needs."""

    layout: ImageLayout

    def tag(self, name: str, desc: Descriptor) -> object: ...


def _local_by_digest(layout: ImageLayout, ref: Reference,
                     platform: Platform | None) -> Image | None:
    """The image `ref`'s digest names, if the layout holds it with every blob."""
    if not ref.digest or not layout.has_blob(ref.digest):
        return None
    data = limits.read_blob(layout, ref.digest, limits.MANIFEST, str(ref))
    doc = parse_manifest_or_index(data)
    if not isinstance(doc, Manifest):
        return None  # an index: which child the platform needs is decided by a pull
    if not all(layout.has_blob(d.digest) for d in (doc.config, *doc.layers)):
        return None
    config = ImageConfig.from_bytes(limits.read_blob(
        layout, doc.config.digest, limits.IMAGE_CONFIG, str(ref), doc.config.size))
    return Image(Descriptor(doc.media_type, ref.digest, len(data), platform=config.platform),
                 doc, config)


def pull_into_store(ref: Reference, store: StoreLike, platform: Platform | None = None, *,
                    clients: ClientPool | None = None,
                    sources: BlobSources | None = None,
                    progress: StepProgress | None = None) -> Image:
    """Pull `ref` into the store and name it there by its full reference (the blobs'
    bytes shown under `progress`)."""
    image = _local_by_digest(store.layout, ref, platform)
    if image is None:
        from ocibuild.registry.pull import pull

        if sources is None:
            from ocibuild.registry.export import store_sources

            sources = store_sources(store)
        image = pull(ref, store.layout, platform=platform, clients=clients, sources=sources,
                     progress=progress)
    store.tag(str(ref), image.descriptor)
    return image


def local_image(ref: Reference, store: StoreLike, platform: Platform | None = None
                ) -> Image | None:
    """The image `ref`'s digest names when the store holds it whole (named then by
    `ref`): no network needed."""
    image = _local_by_digest(store.layout, ref, platform)
    if image is not None:
        store.tag(str(ref), image.descriptor)
    return image


def resolve_source(ref_text: str, store: StoreLike, platform: Platform | None = None, *,
                   clients: ClientPool | None = None,
                   sources: BlobSources | None = None) -> Image:
    """The image a FROM (or an image build context) names, with every blob in the store."""
    text = ref_text.strip()
    # tarfile and the archive readers only for these sources: a push from a layout
    # or the store never loads them
    from ocibuild.registry.archives import image_from_docker_archive, image_from_layout
    if text.startswith(OCI_LAYOUT):
        return image_from_layout(text[len(OCI_LAYOUT):], store.layout, platform)
    if text.startswith(DOCKER_ARCHIVE):
        return image_from_docker_archive(text[len(DOCKER_ARCHIVE):], store.layout)
    if text.startswith(DOCKER_IMAGE):
        text = text[len(DOCKER_IMAGE):]
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise UsageError(f"{ref_text}: unsupported image source {scheme}:// "
                         f"(use {DOCKER_IMAGE}, {OCI_LAYOUT} or {DOCKER_ARCHIVE})")
    return pull_into_store(parse_reference(text), store, platform, clients=clients,
                           sources=sources)


@dataclass(frozen=True)
class BuildContext:
    """One `--build-context NAME=VALUE`: an image source or a local directory."""

    name: str
    source: str  # an image source resolve_source takes, or "" for a directory
    directory: Path | None = None

    @property
    def is_image(self) -> bool:
        return self.directory is None


def parse_build_context(text: str) -> BuildContext:
    """Parse `NAME=docker-image://REF|oci-layout://PATH[:TAG]|docker-archive://F|DIR`."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name or not value:
        raise UsageError(f"--build-context {text!r}: expected NAME=VALUE")
    if value.startswith((DOCKER_IMAGE, OCI_LAYOUT, DOCKER_ARCHIVE)):
        if value.startswith(DOCKER_IMAGE):
            parse_reference(value[len(DOCKER_IMAGE):])  # report a bad reference now
        return BuildContext(name.lower(), value)
    if "://" in value:
        raise UsageError(f"--build-context {text!r}: unsupported source "
                         f"{value.split('://', 1)[0]}:// (use {DOCKER_IMAGE}, {OCI_LAYOUT}, "
                         f"{DOCKER_ARCHIVE} or a directory)")
    path = Path(value)
    if not path.is_dir():
        raise UsageError(f"--build-context {text!r}: {value} is not a directory")
    return BuildContext(name.lower(), "", path)


def resolve_build_context(ctx: BuildContext, store: StoreLike,
                          platform: Platform | None = None, *,
                          clients: ClientPool | None = None,
                          sources: BlobSources | None = None) -> Image | Path:
    """The image (blobs in the store) or the directory a build context names."""
    if ctx.directory is not None:
        return ctx.directory
    return resolve_source(ctx.source, store, platform, clients=clients, sources=sources)


def load_local(layout_path: str | os.PathLike[str], ref: str | None,
               platform: Platform | None = None) -> tuple[ImageLayout, Image]:
    """An image in an OCI layout on disk (for `ocibuild push oci:PATH[:TAG]`)."""
    layout = ImageLayout.open(layout_path)
    return layout, load_image(layout, ref, platform)
