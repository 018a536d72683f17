"""Attestations of an image, stored the way BuildKit stores them
(docs/attestations/attestation-storage.md of BuildKit).

Each platform's image gets an attestation manifest: an OCI artifact manifest
(`artifactType application/vnd.docker.attestation.manifest.v1+json`, the empty JSON
config, `subject` the image manifest) whose layers are in-toto statements
(`application/vnd.in-toto+json`, each annotated with its `in-toto.io/predicate-type`).
The image then becomes an OCI index listing the image manifests first and the
attestation manifests after them, each of those with platform `unknown/unknown` and the
annotations `vnd.docker.reference.type: attestation-manifest` and
`vnd.docker.reference.digest: <the image manifest's digest>`, so that a runtime never
picks one and a reader finds the attestations of the image it chose (`manifest.py`).

A statement's subjects are the image manifest's digest under each name the output gives
the image, as a purl with the platform (BuildKit's default subjects), or under `_` when
the output names none. Predicates are made once per build, before the outputs are
written: SLSA provenance v1 (`provenance.py`, from the facts `capture.py` gathers from
the build graph) and an SPDX 2.3 SBOM of the final image's files (`sbom.py`, reading
the package databases the layers hold). Each output's image (one per distinct set of
output options) then gets statements naming its own manifest digest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ocibuild.attest.purl import image_purl

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
INTOTO_MEDIA_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE_ANNOTATION = "in-toto.io/predicate-type"


@dataclass(frozen=True)
class Predicate:
    """One attestation's content: its predicate type and body (JSON-able)."""

    predicate_type: str
    body: Mapping[str, Any] = field(hash=False)


def subjects(manifest_digest: str, names: Sequence[str], platform: str) -> list[dict[str, Any]]:
    """In-toto subjects for the image manifest `manifest_digest`, as BuildKit names them."""
    algorithm, _, hex_ = manifest_digest.partition(":")
    digest = {algorithm: hex_}
    if not names:
        return [{"name": "_", "digest": digest}]
    return [{"name": image_purl(n, platform), "digest": digest} for n in names]


def statement(predicate: Predicate, subject: list[dict[str, Any]]) -> dict[str, Any]:
    """The in-toto v1 statement of `predicate` about `subject`."""
    return {"_type": STATEMENT_TYPE, "predicateType": predicate.predicate_type,
            "subject": subject, "predicate": predicate.body}


def statements_for(predicates: Sequence[Predicate], image_digest: str, names: Sequence[str],
                   platform: str) -> list[dict[str, Any]]:
    """The statements of every predicate about one image (its manifest digest, the
    names its output gives it, its platform)."""
    subject = subjects(image_digest, names, platform)
    return [statement(p, subject) for p in predicates]
