"""`pull --all-platforms`: an image index and every image it lists, as `docker pull
--all-platforms` and `skopeo copy --all` fetch them.

Each image is an ordinary pull by digest (its blobs verified, those already present
skipped); the index's own bytes are stored last, so a layout never names an index
whose images are not all there. A reference to a single manifest is a plain pull. An
entry that is itself an index is not followed (registries and builders do not nest
them): the pull fails naming it rather than store an index with a dangling entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ocibuild.errors import OcibuildError
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.manifest import Index, parse_manifest_or_index
from ocibuild.registry.pull import _fetch_manifest, pull

if TYPE_CHECKING:
    from ocibuild.oci.layout import ImageLayout
    from ocibuild.progress.transfer import StepProgress
    from ocibuild.reference import Reference
    from ocibuild.registry.blob_sources import BlobSources
    from ocibuild.registry.client import ClientPool


def pull_all_platforms(ref: Reference, layout: ImageLayout, clients: ClientPool, *,
                       sources: BlobSources | None = None,
                       progress: StepProgress | None = None) -> Descriptor:
    """Pull `ref` with every image of its index into `layout`; return the descriptor
    of what `ref` names (the index, or the single manifest). The caller tags it."""
    what = f"pull {ref}"
    data, media_type, digest = _fetch_manifest(clients.get(ref.registry), ref,
                                               ref.identifier, None, what)
    doc = parse_manifest_or_index(data, media_type)
    if not isinstance(doc, Index):
        return pull(ref, layout, clients=clients, sources=sources, progress=progress
                    ).descriptor
    for child in doc.manifests:
        if child.media_type in mediatypes.INDEX_TYPES:
            raise OcibuildError(f"{what}: the index lists another index ({child.digest}); "
                                "pull that one by digest")
        pull(ref.with_digest(child.digest), layout, clients=clients, sources=sources,
             progress=progress)
    layout.put_bytes(data)
    return Descriptor(doc.media_type, digest, len(data))
