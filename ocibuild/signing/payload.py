"""The simple-signing payload: what a signature signs.

    {"critical": {"identity": {"docker-reference": "REGISTRY/REPO:TAG"},
                  "image": {"docker-manifest-digest": "sha256:..."},
                  "type": "cosign container image signature"},
     "optional": null}

Written as Go writes it (keys sorted, no spaces), `optional` null as cosign writes it.
Read as strictly as containers/image reads it: `critical` and its objects must have
exactly these fields, no key may appear twice, and `optional` is null or an object
(its contents are not trusted for anything). The payload is parsed only after its
signature verified.

Which reference a signature must name follows containers/image's default
`signedIdentity`, `matchRepoDigestOrExact`: an image asked for by tag needs a
signature for exactly that name and tag; one asked for by digest needs a signature
for any tag or digest of the same repository (the digest itself is checked apart).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ocibuild.errors import OcibuildError
from ocibuild.oci import digest as _digest
from ocibuild.reference import InvalidReferenceError, Reference, parse_reference

SIGNATURE_TYPE = "cosign container image signature"


class PayloadError(OcibuildError):
    """A payload that is not a valid simple-signing document."""


@dataclass(frozen=True)
class Payload:
    """What an image signature signs: the manifest digest and the name it was pushed as."""
    manifest_digest: str
    docker_reference: str


def signed_identity(ref: Reference) -> str:
    """The reference a signature of `ref` names: name:tag when it has a tag (as
    containers/image signs), else name@digest."""
    if ref.tag:
        return f"{ref.name}:{ref.tag}"
    return f"{ref.name}@{ref.digest}" if ref.digest else ref.name


def make_payload(manifest_digest: str, docker_reference: str) -> bytes:
    doc = {"critical": {"identity": {"docker-reference": docker_reference},
                        "image": {"docker-manifest-digest": manifest_digest},
                        "type": SIGNATURE_TYPE},
           "optional": None}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise PayloadError(f"the payload has {key!r} twice")
        found[key] = value
    return found


def _exact(obj: Any, fields: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or sorted(obj) != sorted(fields):
        raise PayloadError(f"the payload's {where} must have exactly the fields "
                           f"{', '.join(fields)}")
    return obj


def parse_payload(data: bytes) -> Payload:
    try:
        doc = json.loads(data, object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"the payload is not JSON: {exc}") from None
    top = _exact(doc, ("critical", "optional"), "top level")
    if top["optional"] is not None and not isinstance(top["optional"], dict):
        raise PayloadError("the payload's optional part is neither null nor an object")
    critical = _exact(top["critical"], ("identity", "image", "type"), "critical part")
    if critical["type"] != SIGNATURE_TYPE:
        raise PayloadError(f"the payload's type is {critical['type']!r}, not "
                           f"{SIGNATURE_TYPE!r}")
    image = _exact(critical["image"], ("docker-manifest-digest",), "image")
    identity = _exact(critical["identity"], ("docker-reference",), "identity")
    digest, reference = image["docker-manifest-digest"], identity["docker-reference"]
    if not isinstance(digest, str) or not _digest.is_digest(digest):
        raise PayloadError(f"the payload's manifest digest {digest!r} is not a digest")
    if not isinstance(reference, str):
        raise PayloadError("the payload's docker-reference is not a string")
    return Payload(digest, reference)


def identity_matches(signed: str, ref: Reference) -> bool:
    """Whether a signature naming `signed` may stand for `ref` (matchRepoDigestOrExact)."""
    try:
        theirs = parse_reference(signed, default_tag="")
    except InvalidReferenceError:
        return False
    if ref.digest or not ref.tag:
        return theirs.name == ref.name
    return (theirs.name, theirs.tag, theirs.digest) == (ref.name, ref.tag, "")
