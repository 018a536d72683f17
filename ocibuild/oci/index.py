"""Image indexes a build writes: several manifests (one per platform, and whatever
else a caller adds, such as attestation manifests) under one digest.

The index lists the manifests in the order given, so the same build writes the same
index bytes; each descriptor keeps its platform and annotations as the caller made
them. Every manifest must already be in the layout: an index naming a missing blob
would be pushed or copied half.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ocibuild.errors import OcibuildError
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.manifest import Index


def write_index(layout: ImageLayout, manifests: Sequence[Descriptor],
                annotations: Mapping[str, str] | None = None) -> Descriptor:
    """Store an index of `manifests` in `layout`; return its descriptor (untagged).

    The index is a Docker manifest list when every manifest is a Docker schema 2
    manifest (a registry or daemon that takes one takes the other), else an OCI index."""
    if not manifests:
        raise OcibuildError("an image index needs at least one manifest")
    for desc in manifests:
        if not layout.has_blob(desc.digest):
            raise OcibuildError(f"{layout.path}: manifest {desc.digest} is missing")
    docker = all(d.media_type == mediatypes.DOCKER_MANIFEST for d in manifests)
    index = Index(tuple(manifests),
                  mediatypes.DOCKER_MANIFEST_LIST if docker else mediatypes.OCI_INDEX,
                  dict(annotations or {}))
    return layout.put_manifest(index)
