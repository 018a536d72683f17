"""Images in a layout: resolve a reference to manifest and config, write new images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ocibuild.errors import OcibuildError
from ocibuild.oci import limits, mediatypes
from ocibuild.oci.config import ImageConfig
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.manifest import Index, Manifest, parse_manifest_or_index
from ocibuild.oci.platform import Platform
from ocibuild.oci.platform import host as host_platform


@dataclass(frozen=True)
class Image:
    """One platform's image: its manifest descriptor, manifest and config."""

    descriptor: Descriptor
    manifest: Manifest
    config: ImageConfig

    @property
    def digest(self) -> str:
        return self.descriptor.digest


def select_platform(index: Index, wanted: Platform, where: str) -> Descriptor:
    candidates = [m for m in index.manifests if m.media_type in mediatypes.MANIFEST_TYPES
                  or m.media_type == ""]
    ranked = [(rank, i, m) for i, m in enumerate(candidates) if m.platform is not None
              and (rank := wanted.rank(m.platform)) is not None]
    if ranked:
        return min(ranked, key=lambda found: found[:2])[2]
    if len(candidates) == 1 and candidates[0].platform is None:
        return candidates[0]
    have = ", ".join(str(m.platform) for m in candidates if m.platform) or "none"
    raise OcibuildError(f"{where}: no image for platform {wanted} (available: {have})")


# (layout, what a reference resolved to, platform wanted) -> the image it gave, and its
# manifest's and config's files as they were read: a build reads and checks those blobs
# once, not at each of its look-ups (the base image: as the Dockerfile is converted,
# then as it is solved). A file since removed or rewritten is read again.
_loaded: dict[tuple[object, ...], tuple[Image, tuple[object, ...]]] = {}


def load_image(layout: ImageLayout, ref: str | None = None,
               platform: Platform | None = None) -> Image:
    """Resolve `ref` (tag, digest, or None for the only image) to one platform's image."""
    desc = layout.resolve(ref)
    key = (str(layout.path), desc.media_type, desc.digest, desc.size, desc.platform, platform)
    if (loaded := _loaded.get(key)) is not None and _files_of(layout, loaded[0]) == loaded[1]:
        return loaded[0]
    image = _load_image(layout, ref, desc, platform)
    files = _files_of(layout, image)
    if files is not None:
        _loaded[key] = image, files
    return image


def _files_of(layout: ImageLayout, image: Image) -> tuple[object, ...] | None:
    try:
        return tuple((st.st_ino, st.st_size, st.st_mtime_ns) for st in (
            layout.blob_path(d).stat() for d in (image.digest, image.manifest.config.digest)))
    except OSError:
        return None


def _load_image(layout: ImageLayout, ref: str | None, desc: Descriptor,
                platform: Platform | None) -> Image:
    where = f"{layout.path}:{ref}" if ref else str(layout.path)
    for _ in range(4):  # an index may point at an index; stop nested loops
        data = limits.read_blob(layout, desc.digest, limits.MANIFEST, where, desc.size)
        doc = parse_manifest_or_index(data, desc.media_type)
        if isinstance(doc, Manifest):
            config = ImageConfig.from_bytes(limits.read_blob(
                layout, doc.config.digest, limits.IMAGE_CONFIG, where, doc.config.size))
            return Image(Descriptor(doc.media_type, desc.digest, desc.size,
                                    platform=desc.platform), doc, config)
        desc = select_platform(doc, platform or host_platform(), where)
    raise OcibuildError(f"{where}: image indexes nested too deeply")


def write_image(layout: ImageLayout, config: ImageConfig, layers: Sequence[Descriptor],
                tags: Sequence[str] = (), annotations: dict[str, str] | None = None,
                docker_types: bool = False) -> Descriptor:
    """Store config and manifest (layer blobs must already be in the layout); tag it.
    `docker_types` gives the manifest and config Docker schema 2 media types."""
    if len(layers) != len(config.diff_ids):
        raise OcibuildError(
            f"image has {len(layers)} layers but its config lists {len(config.diff_ids)} diff_ids"
        )
    for layer in layers:
        if not layout.has_blob(layer.digest):
            raise OcibuildError(f"{layout.path}: layer blob {layer.digest} is missing")
    config_bytes = config.to_bytes()
    config_digest = layout.put_bytes(config_bytes)
    manifest = Manifest(
        config=Descriptor(mediatypes.DOCKER_CONFIG if docker_types else mediatypes.OCI_CONFIG,
                          config_digest, len(config_bytes)),
        layers=tuple(layers),
        media_type=mediatypes.DOCKER_MANIFEST if docker_types else mediatypes.OCI_MANIFEST,
        annotations=dict(annotations or {}),
    )
    desc = layout.put_manifest(manifest)
    desc = Descriptor(desc.media_type, desc.digest, desc.size, platform=config.platform)
    for tag in tags:
        layout.tag(tag, desc)
    return desc
