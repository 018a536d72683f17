"""The attestations `--provenance`, `--sbom` and `--attest` ask of a build, made once the
steps are solved and before the outputs are written (they attach them, see
`ocibuild.attest`). This is where the build's parts meet the attestation makers: the
solver's findings (downloads' digests, git commits, what was read of each local
context) become `ocibuild.attest.capture`'s plain mappings, and the final image's layers
go to the SBOM."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ocibuild.attest import Predicate
from ocibuild.attest.capture import BuildRequest, build_facts
from ocibuild.attestations import AttestRequest
from ocibuild.graph.ops import ContextSource, CopyOp, ExecOp, HttpSource, Op, walk

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.oci.descriptor import Descriptor
    from ocibuild.solver.solve import Solver


def _context_reads(ops: Sequence[Op], key_inputs: Mapping[str, Mapping[str, Any]]
                   ) -> Iterator[tuple[str, str]]:
    """(context name, content checksum) of every COPY from a context and every bind
    mount of one, as their cache keys took them."""
    for op in ops:
        parts = key_inputs.get(op.digest, {})
        if isinstance(op, CopyOp) and isinstance(op.source, ContextSource):
            if isinstance(parts.get("content"), str):
                yield op.source.name, parts["content"]
        elif isinstance(op, ExecOp):
            for i, m in enumerate(op.mounts):
                if isinstance(m.source, ContextSource) and isinstance(parts.get(f"mount{i}"),
                                                                      str):
                    yield m.source.name, parts[f"mount{i}"]


def make_attestations(request: AttestRequest, build: BuildRequest, *, target: Op,
                      solver: Solver, store: Store, layers: Sequence[Descriptor],
                      name: str, creator: str) -> list[Predicate]:
    """The predicates `request` asks for, SBOM first (BuildKit's order)."""
    found: list[Predicate] = []
    if request.sbom:
        from ocibuild.attest.sbom import sbom

        found.append(sbom(store.layout, layers, name=name, creator=creator))
    if request.provenance is not None:
        from ocibuild.attest.provenance import provenance

        key_inputs = solver.key_inputs
        ops = walk(target)
        facts = build_facts(
            target, build,
            http_digests={op.digest: key_inputs[op.digest]["content"] for op in ops
                          if isinstance(op, HttpSource) and op.digest in key_inputs},
            git_commits={d: r.commit for d, r in solver.git.resolved.items()},
            context_reads=_context_reads(ops, key_inputs))
        found.append(provenance(facts, request.provenance, builder_id=request.builder_id,
                                finished=datetime.now(UTC)))
    return found
