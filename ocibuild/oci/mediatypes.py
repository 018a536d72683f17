"""Media types of the OCI image spec and of Docker's image manifest v2 schema 2."""

from __future__ import annotations

OCI_LAYOUT_VERSION = "1.0.0"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"  # containerd's name
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
LAYER_TYPES = frozenset(
    {OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, DOCKER_LAYER, DOCKER_LAYER_GZIP,
     DOCKER_LAYER_ZSTD, DOCKER_FOREIGN_LAYER_GZIP}
)

# Compression names used across the code base.
GZIP = "gzip"
ZSTD = "zstd"
UNCOMPRESSED = "none"
COMPRESSIONS = (GZIP, ZSTD, UNCOMPRESSED)

_OCI_LAYER_BY_COMPRESSION = {GZIP: OCI_LAYER_GZIP, ZSTD: OCI_LAYER_ZSTD, UNCOMPRESSED: OCI_LAYER}
_DOCKER_LAYER_BY_COMPRESSION = {GZIP: DOCKER_LAYER_GZIP, ZSTD: DOCKER_LAYER_ZSTD,
                                UNCOMPRESSED: DOCKER_LAYER}
_COMPRESSION_BY_LAYER_TYPE = {
    **{t: c for c, t in _OCI_LAYER_BY_COMPRESSION.items()},
    **{t: c for c, t in _DOCKER_LAYER_BY_COMPRESSION.items()},
}


def oci_layer_type(compression: str) -> str:
    """The OCI layer media type for a compression name (gzip, zstd, none)."""
    try:
        return _OCI_LAYER_BY_COMPRESSION[compression]
    except KeyError:
        raise ValueError(
            f"unknown compression {compression!r}; use one of {COMPRESSIONS}"
        ) from None


def layer_type(compression: str, oci: bool = True) -> str:
    """The layer media type for a compression name, OCI or Docker schema 2."""
    if oci:
        return oci_layer_type(compression)
    try:
        return _DOCKER_LAYER_BY_COMPRESSION[compression]
    except KeyError:
        raise ValueError(
            f"unknown compression {compression!r}; use one of {COMPRESSIONS}"
        ) from None


def layer_compression(media_type: str) -> str | None:
    """The compression a (distributable) layer media type names; None for others."""
    return _COMPRESSION_BY_LAYER_TYPE.get(media_type)


def to_docker(media_type: str) -> str:
    """The Docker schema 2 equivalent of an OCI media type (for docker-archive and v2 pushes)."""
    return {
        OCI_MANIFEST: DOCKER_MANIFEST,
        OCI_INDEX: DOCKER_MANIFEST_LIST,
        OCI_CONFIG: DOCKER_CONFIG,
        OCI_LAYER_GZIP: DOCKER_LAYER_GZIP,
    }.get(media_type, media_type)
