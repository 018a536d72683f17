"""What writing a layer produced: its digests, size and media type. Apart from the
layer writers so that a process that only reads the result (the builder, whose file
ops write layers in other processes) does not import them."""

from __future__ import annotations

from ocibuild.deferred import deferred_dataclass
from ocibuild.oci.descriptor import Descriptor


@deferred_dataclass(frozen=True)
class LayerInfo:
    """A layer blob: its digests, sizes, media type and compression."""
    digest: str  # sha256 of the compressed blob
    diff_id: str  # sha256 of the uncompressed tar
    size: int  # compressed size in bytes
    media_type: str  # OCI layer media type for the compression
    compression: str  # "gzip" | "zstd" | "none"
    tar_size: int = 0  # uncompressed size in bytes (0: not known)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)
