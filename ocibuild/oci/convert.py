"""A layer blob in another compression or at another level, streamed in bounded memory.

The diffID never changes, so conversions are remembered by (source blob, compression,
level) under ROOT/conversions/: the blob a conversion made lives in the content store
like any other, and a later export of the same layer finds it instead of compressing
again. A remembered blob that was pruned since is simply made again.
"""

from __future__ import annotations

from pathlib import Path

from ocibuild.atomic import atomic_write_bytes
from ocibuild.oci import digest as _digest
from ocibuild.oci.compression import open_uncompressed
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layerstream import LayerSink
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.mediatypes import oci_layer_type

CONVERSIONS = "conversions"
CHUNK = 1 << 20


def convert_layer(layout: ImageLayout, layer: Descriptor, diff_id: str, compression: str,
                  level: int | None, memo_dir: Path | None = None) -> Descriptor:
    """`layer` (a blob in `layout`) in `compression` at `level` (None: the default one),
    with an OCI media type; the new blob is written to `layout`."""
    memo = None
    if memo_dir is not None:
        name = f"{_digest.hex_of(layer.digest)}.{compression}.{'' if level is None else level}"
        memo = memo_dir / name
        known = _remembered(layout, memo, compression)
        if known is not None:
            return known
    with layout.open_blob(layer.digest, layer.size) as src, layout.blob_writer() as out:
        sink = LayerSink(out, compression, level)  # type: ignore[arg-type]
        plain = open_uncompressed(src)  # type: ignore[arg-type]
        try:
            while chunk := plain.read(CHUNK):
                sink.write(chunk)
        except BaseException:
            sink.abort()
            raise
        result = sink.close()
        if result.diff_id != diff_id:
            raise _digest.DigestMismatchError(
                f"layer {layer.digest}: uncompressed digest {result.diff_id}, "
                f"but the image config says {diff_id}")
        desc = out.commit()
    if memo is not None:
        memo.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(memo, f"{desc.digest} {desc.size}\n".encode())
    return Descriptor(oci_layer_type(compression), desc.digest, desc.size)


def _remembered(layout: ImageLayout, memo: Path, compression: str) -> Descriptor | None:
    try:
        digest, size = memo.read_text().split()
        if _digest.is_digest(digest) and layout.has_blob(digest) \
                and layout.blob_size(digest) == int(size):
            return Descriptor(oci_layer_type(compression), digest, int(size))
    except (OSError, ValueError):
        pass  # none yet or unreadable: convert (again)
    return None
