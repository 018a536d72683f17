"""Signing and verifying a manifest in a registry: `ocibuild sign`, `ocibuild verify`,
`build --sign-key` and the signed `--cache-to` / `--cache-from`.

What is signed is the digest of the manifest (or index) the reference names, as the
registry serves it; the digest is computed from the bytes, never taken from a header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocibuild.errors import OcibuildError
from ocibuild.oci import digest as _digest
from ocibuild.reference import Reference
from ocibuild.signing.attachments import Signature, add_signature, read_signatures
from ocibuild.signing.keys import PublicKey, SigningKey
from ocibuild.signing.payload import make_payload, signed_identity
from ocibuild.signing.verify import check_signatures

if TYPE_CHECKING:
    from ocibuild.registry.client import RegistryClient


@dataclass(frozen=True)
class Signed:
    """A manifest and the reference its signature names (`added`: False when that very
    signature was there already)."""

    manifest_digest: str
    identity: str
    added: bool = True


def manifest_digest(client: RegistryClient, ref: Reference, what: str) -> str:
    """The digest of what `ref` names in the registry, from the manifest's bytes."""
    data, _, _ = client.get_manifest(ref.repository, ref.identifier, what)
    digest = _digest.of_bytes(data)
    if ref.digest and digest != ref.digest:
        raise OcibuildError(f"{what}: the registry sent a manifest with digest {digest}, "
                            f"not the requested {ref.digest}")
    return digest


def sign_manifest(client: RegistryClient, ref: Reference, key: SigningKey, what: str,
                  digest: str | None = None) -> Signed:
    """Sign the manifest `ref` names (or `digest`, already known) for `ref`'s name and
    tag, and store the signature beside it."""
    digest = digest or manifest_digest(client, ref, what)
    identity = signed_identity(ref.with_digest("") if ref.tag else ref.with_digest(digest))
    payload = make_payload(digest, identity)
    added = add_signature(client, ref.repository, digest,
                          Signature(payload, key.sign(payload)), what)
    return Signed(digest, identity, added)


def verify_manifest(client: RegistryClient, ref: Reference, key: PublicKey, what: str,
                    digest: str | None = None) -> Signed:
    """The manifest `ref` names (or `digest`) and the reference its accepted signature
    names; a SignatureError when no stored signature made with `key` vouches for it."""
    digest = digest or manifest_digest(client, ref, what)
    payload = check_signatures(read_signatures(client, ref.repository, digest, what), key,
                               digest, ref)
    return Signed(digest, payload.docker_reference, added=False)
