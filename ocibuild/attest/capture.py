"""The facts a build's provenance states, gathered from its graph of ops after the
solve: the images it read (FROM, COPY --from, RUN --mount=from), git and http sources
with what they resolved to, the local contexts with what was read of them, the secret
and ssh ids RUN steps mounted, and whether any RUN had network access.

The solver's findings come in as plain mappings, so this module knows graph ops only:
`http_digests` (HttpSource op digest -> sha256 of the body), `git_commits` (GitSource op
digest -> commit) and `context_reads` (op digest -> the content checksums that op's key
took from the context it names, as (context name, checksum)).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ocibuild.attest.provenance import BuildFacts, ImageMaterial
from ocibuild.graph.ops import ExecOp, GitSource, HttpSource, ImageSource, Op, walk
from ocibuild.sources.git_url import redact


@dataclass(frozen=True)
class BuildRequest:
    """What the build was asked: its frontend args, Dockerfile and context."""

    args: Mapping[str, str]
    dockerfile_path: str
    dockerfile: bytes
    started: datetime
    builder_platform: str
    context_uri: str = ""  # the git URL of a git context, credentials removed
    context_commit: str = ""  # the commit it was checked out at


def frontend_args(build_args: Mapping[str, str], labels: Mapping[str, str],
                  target: str | None) -> dict[str, str]:
    """The args BuildKit's Dockerfile frontend receives for these options."""
    args = {f"build-arg:{k}": v for k, v in build_args.items()}
    args.update({f"label:{k}": v for k, v in labels.items()})
    if target:
        args["target"] = target
    return args


def _sha256(parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() + b"\n")
    return f"sha256:{h.hexdigest()}"


def _local_digests(request: BuildRequest, context_reads: Iterable[tuple[str, str]]
                   ) -> dict[str, str]:
    reads: dict[str, list[str]] = {}
    for name, checksum in context_reads:
        reads.setdefault(name, []).append(checksum)
    found: dict[str, str] = {}
    if not request.context_uri:
        found["context"] = _sha256(sorted(reads.get("context", ())))
        found["dockerfile"] = f"sha256:{hashlib.sha256(request.dockerfile).hexdigest()}"
    for name in sorted(reads):
        if name != "context":
            found[name] = _sha256(sorted(reads[name]))
    return found


def _mount_ids(ops: list[Op], kind: str) -> tuple[tuple[str, bool], ...]:
    found: dict[str, bool] = {}
    for op in ops:
        if isinstance(op, ExecOp):
            for m in op.mounts:
                if m.type == kind:
                    ident = m.id or ("default" if kind == "ssh" else m.target)
                    found[ident] = found.get(ident, True) and not m.required
    return tuple(sorted(found.items()))


def build_facts(target: Op, request: BuildRequest, *, http_digests: Mapping[str, str],
                git_commits: Mapping[str, str],
                context_reads: Iterable[tuple[str, str]]) -> BuildFacts:
    ops = walk(target)
    images = {(op.ref, op.manifest_digest, op.platform): None
              for op in ops if isinstance(op, ImageSource)}
    git = {(redact(op.remote) + (f"#{op.ref}" if op.ref else ""),
            git_commits.get(op.digest, "")): None
           for op in ops if isinstance(op, GitSource)}
    http = {(op.url, http_digests[op.digest]): None
            for op in ops if isinstance(op, HttpSource) and op.digest in http_digests}
    if request.context_uri and request.context_commit:  # BuildKit: a git source too
        git = {(request.context_uri, request.context_commit): None, **git}
    return BuildFacts(
        args=request.args, dockerfile_path=request.dockerfile_path,
        dockerfile=request.dockerfile, started=request.started,
        builder_platform=request.builder_platform, context_uri=request.context_uri,
        context_commit=request.context_commit,
        images=tuple(ImageMaterial(ref, digest, platform) for ref, digest, platform in images),
        git=tuple(g for g in git if g[1]), http=tuple(http),
        locals=_local_digests(request, context_reads),
        secrets=_mount_ids(ops, "secret"), ssh=_mount_ids(ops, "ssh"),
        network=any(isinstance(op, ExecOp) and op.network != "none" for op in ops))
