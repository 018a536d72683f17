"""The manifest one output writes: its layers in the asked compression, its media types
and annotations (ImageOptions), stored in the store's content layout.

Layer compression follows BuildKit's `compression` / `force-compression`: the build's
own layers are written in the asked compression (a layer made or cached in another
one is converted); base-image layers keep the compression they came in unless
`force-compression=true`. `compression-level` applies to the layers converted or made
for this output; like BuildKit, it never recompresses a base layer already in the asked
compression. Converted blobs are remembered (ocibuild.oci.convert), so the same export
again compresses nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ocibuild.exporter import annotation_keys as ann
from ocibuild.exporter.options import ImageOptions
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.image import write_image
from ocibuild.oci.layerref import LayerRef
from ocibuild.oci.platform import Platform

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.exporter.results import BuildResult


def write_output_image(store: Store, result: BuildResult, options: ImageOptions,
                       default_compression: str, where: str) -> Descriptor:
    """Write the image of `result` as `options` ask; returns its manifest descriptor
    (with the platform and the manifest-descriptor annotations)."""
    config = result.config
    platform = Platform(config.os, config.architecture, config.variant)
    manifest_annotations, descriptor_annotations = ann.for_image(
        options.annotations, platform, options.oci_types, where)
    compression = options.compression or default_compression
    layers = [_layer(store, ref, compression, options, own=i >= result.base_layers)
              for i, ref in enumerate(result.layers)]
    desc = write_image(store.layout, config, layers, annotations=manifest_annotations,
                       docker_types=not options.oci_types)
    return desc.with_annotations(**descriptor_annotations)


def _layer(store: Store, ref: LayerRef, compression: str, options: ImageOptions, *,
           own: bool) -> Descriptor:
    desc = ref.descriptor
    current = mediatypes.layer_compression(desc.media_type)
    if current is None:
        if desc.media_type in mediatypes.LAYER_TYPES:
            return desc  # a foreign (non-distributable) layer goes as it is
        from ocibuild.oci.compression import detect

        with store.layout.open_blob(desc.digest, desc.size) as blob:
            current = detect(blob.read(4))
    convert = (own or options.force) and current != compression
    if own and options.level is not None and compression != mediatypes.UNCOMPRESSED:
        convert = True
    if convert:  # the codecs load only here: a cached build's layers are as recorded
        from ocibuild.oci.convert import CONVERSIONS, convert_layer

        desc = convert_layer(store.layout, desc, ref.diff_id, compression, options.level,
                             store.root / CONVERSIONS)
        current = compression
    media_type = mediatypes.layer_type(current, oci=options.oci_types)
    return Descriptor(media_type, desc.digest, desc.size, dict(desc.annotations))
