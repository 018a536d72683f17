"""Signatures stored in a registry, as cosign and containers/image store them.

The signatures of manifest `sha256:HEX` in a repository are the manifest tagged
`sha256-HEX.sig` in that repository: an OCI image manifest whose config is an OCI
image config (`rootfs.diff_ids` lists the layers) and whose layers are each one
signature: a payload blob (`application/vnd.dev.cosign.simplesigning.v1+json`) with
the base64 signature in the layer's annotation `dev.cosignproject.cosign/signature`.

Adding a signature reads that manifest and its config, appends a layer and pushes
both again (as `skopeo copy --sign-by-sigstore-private-key` does); a signature whose
payload and annotations are already there is not added twice. Layers of other media
types (attestations that cosign keeps in the same place) are kept and skipped when
reading. Everything goes through the registry client: blobs are pushed from, and
fetched (verified against their digest) into, a temporary image layout.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibuild.errors import OcibuildError
from ocibuild.oci import digest as _digest
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.manifest import Manifest

if TYPE_CHECKING:
    from ocibuild.registry.client import RegistryClient

PAYLOAD_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
MAX_PAYLOAD = 4 << 20  # as containers/image reads signatures
MAX_SIGNATURES = 256  # layers of one .sig manifest that are read


@dataclass(frozen=True)
class Signature:
    """One stored signature: the payload's bytes and the signature's (decoded)."""

    payload: bytes
    signature: bytes


def signature_tag(manifest_digest: str) -> str:
    """`sha256-HEX.sig`, the tag holding the signatures of `manifest_digest`."""
    algorithm, _, hex_part = _digest.validate(manifest_digest).partition(":")
    return f"{algorithm}-{hex_part}.sig"


@contextmanager
def scratch_layout() -> Iterator[ImageLayout]:
    """A temporary image layout for the few small blobs a signature needs."""
    with tempfile.TemporaryDirectory(prefix="ocibuild-sig-") as tmp:
        yield ImageLayout.init(Path(tmp) / "layout")


def _existing(client: RegistryClient, repository: str, tag: str, what: str
              ) -> Manifest | None:
    from ocibuild.registry.errors import NotFoundError

    try:
        data, media_type, _ = client.get_manifest(repository, tag, what)
    except NotFoundError:
        return None
    if media_type and media_type != mediatypes.OCI_MANIFEST:
        raise OcibuildError(f"{what}: {tag} is a {media_type}, not an OCI image manifest "
                            "of signatures")
    return Manifest.from_bytes(data, mediatypes.OCI_MANIFEST)


def _fetch(client: RegistryClient, repository: str, desc: Descriptor, layout: ImageLayout,
           what: str) -> bytes:
    from ocibuild.registry.pull import fetch_blob

    if desc.size > MAX_PAYLOAD:
        raise OcibuildError(f"{what}: blob {desc.digest} of {desc.size} bytes is too large "
                            "for a signature")
    fetch_blob(client, repository, desc, layout, what)
    return layout.read_blob(desc.digest)


def read_signatures(client: RegistryClient, repository: str, manifest_digest: str,
                    what: str) -> list[Signature]:
    """The signatures stored for `manifest_digest` (none when there is no .sig tag);
    layers that are not signatures, or whose annotation is not base64, are left out."""
    manifest = _existing(client, repository, signature_tag(manifest_digest), what)
    if manifest is None:
        return []
    found = []
    with scratch_layout() as layout:
        for layer in manifest.layers[:MAX_SIGNATURES]:
            encoded = layer.annotations.get(SIGNATURE_ANNOTATION)
            if layer.media_type != PAYLOAD_TYPE or encoded is None:
                continue
            try:
                signature = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                continue
            found.append(Signature(_fetch(client, repository, layer, layout, what), signature))
    return found


def _config_of(client: RegistryClient, repository: str, manifest: Manifest | None,
               layout: ImageLayout, what: str) -> dict[str, Any]:
    if manifest is None:
        return {"architecture": "", "os": "", "config": {},
                "rootfs": {"type": "layers", "diff_ids": []}}
    try:
        config: dict[str, Any] = json.loads(
            _fetch(client, repository, manifest.config, layout, what))
        diff_ids = config.setdefault("rootfs", {"type": "layers"}).setdefault("diff_ids", [])
        if isinstance(diff_ids, list):
            return config
    except (ValueError, AttributeError):
        pass
    raise OcibuildError(f"{what}: the signatures' config {manifest.config.digest} is not "
                        "an image config")


def add_signature(client: RegistryClient, repository: str, manifest_digest: str,
                  signature: Signature, what: str) -> bool:
    """Append `signature` to the signatures of `manifest_digest`; False when the very
    same one (payload and signature) is there already."""
    from ocibuild.registry.push import push_blobs

    tag = signature_tag(manifest_digest)
    manifest = _existing(client, repository, tag, what)
    annotations = {SIGNATURE_ANNOTATION: base64.b64encode(signature.signature).decode()}
    payload_digest = _digest.of_bytes(signature.payload)
    layers = list(manifest.layers) if manifest is not None else []
    if any(layer.digest == payload_digest and layer.annotations == annotations
           for layer in layers):
        return False
    with scratch_layout() as layout:
        config = _config_of(client, repository, manifest, layout, what)
        layout.put_bytes(signature.payload)
        layer = Descriptor(PAYLOAD_TYPE, payload_digest, len(signature.payload), annotations)
        layers.append(layer)
        config["rootfs"]["diff_ids"].append(payload_digest)
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        config_desc = Descriptor(mediatypes.OCI_CONFIG, layout.put_bytes(config_bytes),
                                 len(config_bytes))
        push_blobs(client, repository, layout, [layer, config_desc], what=what)
    new = Manifest(config=config_desc, layers=tuple(layers), media_type=mediatypes.OCI_MANIFEST)
    client.put_manifest(repository, tag, new.to_bytes(), mediatypes.OCI_MANIFEST, what)
    return True
