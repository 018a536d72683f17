"""SLSA provenance v1 (`https://slsa.dev/provenance/v1`), as BuildKit writes it for a
Dockerfile build (BuildKit's solver/llbsolver/provenance and docs/attestations/
slsa-definitions.md), from the facts of one build (`BuildFacts`, see `capture.py`).

- `buildDefinition.buildType`: BuildKit's build type URL, so readers that know BuildKit's
  layout read ours.
- `externalParameters.configSource`: the Dockerfile's path (`filename`); for a git
  context its URL and commit (the context is then a git source, not a local one).
  `request`: the frontend (`dockerfile.v0`), its args (`build-arg:NAME`, `label:NAME`,
  `target`), the local sources by name; `mode=min` leaves out the build args and labels
  (and says the request is incomplete), secrets and ssh ids appear in `mode=max` only,
  never a secret's value.
- `resolvedDependencies`: base and other images as purls with their manifest digests,
  git sources with their commits, `ADD <url>` downloads with their sha256. ocibuild
  adds what BuildKit leaves out of a local build: the Dockerfile's sha256 (also as the
  config source's digest) and, per local context, the sha256 of the content checksums
  of what the build read from it (in path order), named after the local source.
- `runDetails`: `builder.id` (`builder-id=`, else empty, as BuildKit), `metadata` with
  the invocation id, start and finish times, and BuildKit's extension fields
  (`buildkit_metadata`, `buildkit_completeness`, `buildkit_hermetic`).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ocibuild.attest import Predicate
from ocibuild.attest.purl import image_purl
from ocibuild.errors import UsageError

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md"
FRONTEND = "dockerfile.v0"
_MIN_DROPPED = ("build-arg:", "label:")


@dataclass(frozen=True)
class ImageMaterial:
    """An image a build read (a FROM or a --build-context), as its provenance names it."""
    ref: str
    digest: str
    platform: str = ""
    local: bool = False  # from an OCI layout (purl type oci), not a registry


@dataclass(frozen=True)
class BuildFacts:
    """What one build read and was asked: everything its provenance says."""

    args: Mapping[str, str]  # frontend args: build-arg:NAME, label:NAME, target
    dockerfile_path: str
    dockerfile: bytes
    started: datetime
    builder_platform: str
    context_uri: str = ""  # a git URL the context came from (credentials removed)
    context_commit: str = ""  # its commit
    images: tuple[ImageMaterial, ...] = ()
    git: tuple[tuple[str, str], ...] = ()  # (url, commit)
    http: tuple[tuple[str, str], ...] = ()  # (url, sha256:...)
    locals: Mapping[str, str] = field(default_factory=dict)  # name -> digest ("" unknown)
    secrets: tuple[tuple[str, bool], ...] = ()  # (id, optional)
    ssh: tuple[tuple[str, bool], ...] = ()
    network: bool = False  # some RUN step had network access


def invocation_id() -> str:
    """A random id in BuildKit's form: 25 characters of base 36."""
    n = secrets.randbits(128)
    chars = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while len(out) < 25:
        n, r = divmod(n, 36)
        out += chars[r]
    return out


def rfc3339(ts: datetime) -> str:
    text = ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def _digest_set(digest: str) -> dict[str, str]:
    algorithm, _, hex_ = digest.partition(":")
    return {algorithm: hex_}


def _commit_set(commit: str) -> dict[str, str]:
    return {"sha256" if len(commit) == 64 else "sha1": commit}


def _image_uri(image: ImageMaterial) -> str:
    try:
        return image_purl(image.ref, image.platform, "oci" if image.local else "docker")
    except UsageError:  # a name no registry would take (a layout path): kept as given
        return image.ref


def resolved_dependencies(facts: BuildFacts) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for image in facts.images:
        entry: dict[str, Any] = {"uri": _image_uri(image)}
        if image.digest:
            entry["digest"] = _digest_set(image.digest)
        found.append(entry)
    found += [{"uri": url, "digest": _commit_set(commit)} for url, commit in facts.git]
    found += [{"uri": url, "digest": _digest_set(digest)} for url, digest in facts.http]
    found += [{"name": name, "digest": _digest_set(digest)}
              for name, digest in facts.locals.items() if digest]
    return found


def _request(facts: BuildFacts, mode: str) -> tuple[dict[str, Any], bool]:
    """The request and whether it is complete (min mode drops build args and labels)."""
    args = dict(facts.args)
    complete = True
    if mode == "min":
        kept = {k: v for k, v in args.items() if not k.startswith(_MIN_DROPPED)}
        complete = len(kept) == len(args)
        args = kept
    request: dict[str, Any] = {"frontend": FRONTEND}
    if args:
        request["args"] = dict(sorted(args.items()))
    if mode == "max":
        if facts.secrets:
            request["secrets"] = [_id(i, o) for i, o in facts.secrets]
        if facts.ssh:
            request["ssh"] = [_id(i, o) for i, o in facts.ssh]
    if facts.locals:
        request["locals"] = [{"name": name} for name in facts.locals]
    return request, complete


def _id(ident: str, optional: bool) -> dict[str, Any]:
    return {"id": ident, "optional": True} if optional else {"id": ident}


def provenance(facts: BuildFacts, mode: str, *, builder_id: str = "",
               finished: datetime | None = None, invocation: str | None = None
               ) -> Predicate:
    """The provenance predicate of the build `facts` describe, in `mode` min or max."""
    request, complete = _request(facts, mode)
    config_source: dict[str, Any] = {}
    if facts.context_uri:
        config_source["uri"] = facts.context_uri
        if facts.context_commit:
            config_source["digest"] = _commit_set(facts.context_commit)
    df_digest = facts.locals.get("dockerfile", "")
    if df_digest and not facts.context_uri:
        config_source["digest"] = _digest_set(df_digest)
    config_source["path"] = facts.dockerfile_path
    buildkit_metadata: dict[str, Any] = {}
    if mode == "max":
        buildkit_metadata["source"] = {"infos": [{
            "filename": facts.dockerfile_path, "language": "Dockerfile",
            "data": base64.b64encode(facts.dockerfile).decode()}]}
    incomplete_materials = bool(facts.locals)
    metadata: dict[str, Any] = {
        "invocationId": invocation or invocation_id(),
        "startedOn": rfc3339(facts.started),
        "finishedOn": rfc3339(finished or datetime.now(UTC)),
        "buildkit_metadata": buildkit_metadata,
    }
    if not incomplete_materials and not facts.network:
        metadata["buildkit_hermetic"] = True
    metadata["buildkit_completeness"] = {"request": complete,
                                         "resolvedDependencies": not incomplete_materials}
    definition: dict[str, Any] = {
        "buildType": BUILD_TYPE,
        "externalParameters": {"configSource": config_source, "request": request},
        "internalParameters": {"builderPlatform": facts.builder_platform},
    }
    if dependencies := resolved_dependencies(facts):
        definition["resolvedDependencies"] = dependencies
    body = {"buildDefinition": definition,
            "runDetails": {"builder": {"id": builder_id}, "metadata": metadata}}
    return Predicate(PREDICATE_TYPE, body)
