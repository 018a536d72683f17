"""Deciding whether stored signatures vouch for a manifest, as a `sigstoreSigned`
policy with a `keyPath` decides it in containers/image.

One signature is enough. A signature counts when it verifies with the key over its
payload's exact bytes, and the payload then (and only then parsed) names the manifest
digest asked about and a reference that `payload.identity_matches` the one asked
about. Nothing else in the payload is trusted.
"""

from __future__ import annotations

from collections.abc import Sequence

from ocibuild.errors import OcibuildError
from ocibuild.reference import Reference
from ocibuild.signing.attachments import Signature
from ocibuild.signing.keys import PublicKey
from ocibuild.signing.payload import Payload, PayloadError, identity_matches, parse_payload


class SignatureError(OcibuildError):
    """No stored signature vouches for the image (or cache) with the given key."""


def _reason(sig: Signature, key: PublicKey, manifest_digest: str, ref: Reference
            ) -> tuple[Payload | None, str]:
    """(the payload, "") when `sig` vouches, else (None, why not)."""
    if not key.verifies(sig.signature, sig.payload):
        return None, f"it does not verify with the key {key.path}"
    try:
        payload = parse_payload(sig.payload)
    except PayloadError as exc:
        return None, exc.message
    if payload.manifest_digest != manifest_digest:
        return None, f"signed for another manifest ({payload.manifest_digest})"
    if not identity_matches(payload.docker_reference, ref):
        return None, f"signed for {payload.docker_reference}, not {ref}"
    return payload, ""


def check_signatures(signatures: Sequence[Signature], key: PublicKey, manifest_digest: str,
                     ref: Reference) -> Payload:
    """The payload of the first signature that vouches for `manifest_digest` as `ref`;
    a SignatureError (one line) saying why none does."""
    where = f"{ref.name}@{manifest_digest}"
    if not signatures:
        raise SignatureError(f"{where} has no signature")
    reasons = []
    for sig in signatures:
        payload, reason = _reason(sig, key, manifest_digest, ref)
        if payload is not None:
            return payload
        reasons.append(reason)
    unique = list(dict.fromkeys(reasons))
    if len(signatures) == 1:
        raise SignatureError(f"{where}: its signature is refused: {unique[0]}")
    raise SignatureError(f"{where}: each of its {len(signatures)} signatures is refused: "
                         f"{'; '.join(unique)}")
