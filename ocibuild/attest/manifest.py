"""The attestation manifest of an image and the index that holds both, written into an
image layout (the store's content); layout as described in `ocibuild.attest`.

`attestation_manifest` takes one platform's image manifest descriptor and its
statements; `index_with_attestations` takes a list of them (one per platform, so a
multi-platform build passes several) and writes the index: every image first, in the
order given, then every attestation manifest. The config of an attestation manifest
is the OCI empty descriptor with its two bytes inline (`data`), as BuildKit writes it
since it stores attestations as OCI artifacts; the blob `{}` is stored too, since
registries and copies ask for it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ocibuild.attest import INTOTO_MEDIA_TYPE, PREDICATE_TYPE_ANNOTATION
from ocibuild.errors import UsageError
from ocibuild.oci import canonical, mediatypes
from ocibuild.oci import digest as _digest
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.manifest import Index
from ocibuild.oci.platform import Platform

ARTIFACT_TYPE = "application/vnd.docker.attestation.manifest.v1+json"
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"
UNKNOWN_PLATFORM = Platform("unknown", "unknown")
_EMPTY = b"{}"
_EMPTY_DATA = "e30="  # base64 of {}

Statement = dict[str, Any]


def statement_bytes(stmt: Statement) -> bytes:
    """A statement as it is stored: compact JSON, keys in the order written."""
    return json.dumps(stmt, separators=(",", ":"), ensure_ascii=False).encode()


def attestation_manifest(layout: ImageLayout, image: Descriptor,
                         statements: Sequence[Statement]) -> Descriptor:
    """Store the statements and the attestation manifest of `image` (a manifest in
    `layout`); return its descriptor as the index lists it."""
    if image.media_type != mediatypes.OCI_MANIFEST:
        raise UsageError("attestations need OCI media types: remove oci-mediatypes=false "
                         "from the output, or build without --provenance and --sbom")
    layers = []
    for stmt in statements:
        data = statement_bytes(stmt)
        layers.append({"mediaType": INTOTO_MEDIA_TYPE, "digest": layout.put_bytes(data),
                       "size": len(data),
                       "annotations": {PREDICATE_TYPE_ANNOTATION: stmt["predicateType"]}})
    empty = layout.put_bytes(_EMPTY)
    doc = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": mediatypes.OCI_EMPTY, "digest": empty, "size": len(_EMPTY),
                   "data": _EMPTY_DATA},
        "layers": layers,
        "subject": {"mediaType": image.media_type, "digest": image.digest,
                    "size": image.size},
    }
    data = canonical.dumps(doc)
    layout.put_bytes(data)
    return Descriptor(mediatypes.OCI_MANIFEST, _digest.of_bytes(data), len(data),
                      annotations={REFERENCE_TYPE: ATTESTATION_MANIFEST,
                                   REFERENCE_DIGEST: image.digest},
                      platform=UNKNOWN_PLATFORM)


def index_with_attestations(layout: ImageLayout,
                            images: Sequence[tuple[Descriptor, Sequence[Statement]]]
                            ) -> Descriptor:
    """Store the index of `images` (each a platform's manifest descriptor, with its
    platform, and its statements) and their attestation manifests; return the index's
    descriptor."""
    attached = [attestation_manifest(layout, image, stmts) for image, stmts in images]
    index = Index((*(image for image, _ in images), *attached))
    return layout.put_manifest(index)
