"""A layer blob in another compression (--cache-to ...,compression=zstd), streamed.

The diffID does not change; the new blob is what a build with that compression would
have written (the same block-wise encoders).
"""

from __future__ import annotations

from ocibuild.oci.compression import open_uncompressed
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layerstream import LayerSink
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.mediatypes import oci_layer_type

CHUNK = 1 << 20


def recompressed(layout: ImageLayout, layer: Descriptor, compression: str) -> Descriptor:
    with layout.open_blob(layer.digest, layer.size) as src, layout.blob_writer() as out:
        sink = LayerSink(out, compression)  # type: ignore[arg-type]
        plain = open_uncompressed(src)  # type: ignore[arg-type]
        while chunk := plain.read(CHUNK):
            sink.write(chunk)
        result = sink.close()
        desc = out.commit()
    assert desc.digest == result.digest
    return Descriptor(oci_layer_type(compression), desc.digest, desc.size)
