"""Attestation requests (`--provenance`, `--sbom`, `--attest`), as `docker buildx build`
takes them, checked into an `AttestRequest` before anything is built.

The shorthands become `--attest` values the way buildx rewrites them (`--provenance
mode=max` is `type=provenance,mode=max`; `--sbom=false` is `type=sbom,disabled=true`);
a later value of a type replaces an earlier one, as buildx keeps one per type. A value
that disables an attestation asks for nothing, so `--provenance=false --sbom=false`
still gives a plain image manifest (CI scripts pass them to keep buildx from adding an
index). Provenance defaults to `mode=min`, as buildx's does; `builder-id=` sets
`runDetails.builder.id`. What is made of a request is in `ocibuild.attest`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ocibuild.errors import UsageError

KINDS = ("provenance", "sbom")
PROVENANCE_MODES = ("min", "max")
_FALSE = ("false", "0")
_TRUE = ("true", "1")
# attributes BuildKit reads that change nothing here (`generator=` names a scanner
# image, which ocibuild does not run; `inline-only` concerns the cache exporters)
_IGNORED = {"provenance": ("inline-only", "filename"),
            "sbom": ("generator", "scan-context", "scan-stage")}


@dataclass(frozen=True)
class AttestRequest:
    """What a build attests: provenance (its mode, `min` or `max`, or None for none),
    an SBOM or not, and the builder id provenance names."""

    provenance: str | None = None
    sbom: bool = False
    builder_id: str = ""

    @property
    def any(self) -> bool:
        return self.provenance is not None or self.sbom


def _shorthand(kind: str, value: str) -> str:
    """`--provenance VALUE` / `--sbom VALUE` in `--attest` form, as buildx rewrites them:
    a boolean becomes disabled=, anything else is passed on as attributes."""
    text = value.strip()
    if text.lower() in _FALSE:
        return f"type={kind},disabled=true"
    if text.lower() in _TRUE or not text:
        return f"type={kind}"
    return f"type={kind},{text}"


def requested_attestations(provenance: str | None, sbom: str | None,
                           attest: Iterable[str]) -> tuple[str, ...]:
    """The `--attest` values that the three flags amount to (checked by `check`)."""
    out = list(attest)
    if provenance is not None:
        out.append(_shorthand("provenance", provenance))
    if sbom is not None:
        out.append(_shorthand("sbom", sbom))
    return tuple(out)


def _fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise UsageError(f"--attest {text}: {item!r} is not key=value")
        fields[key] = value.strip()
    return fields


def _enabled(text: str, fields: dict[str, str]) -> bool:
    kind = fields.get("type", "")
    if kind not in KINDS:
        raise UsageError(f"--attest {text}: unknown type {kind!r} (known: "
                         f"{', '.join(KINDS)})")
    disabled = fields.get("disabled", "false").lower()
    if disabled not in (*_TRUE, *_FALSE):
        raise UsageError(f"--attest {text}: disabled={fields['disabled']!r} is not "
                         "true or false")
    known = {"type", "disabled", *_IGNORED[kind]}
    if kind == "provenance":
        known |= {"mode", "builder-id", "version"}
        if fields.get("version", "v1").lower() not in ("v1", ""):
            raise UsageError(f"--attest {text}: version={fields['version']} is not made; "
                             "ocibuild writes SLSA provenance v1 (version=v1)")
    for key in fields:
        if key not in known:
            raise UsageError(f"--attest {text}: unknown attribute {key!r} for {kind} "
                             f"(known: {', '.join(sorted(known - {'type'}))})")
    return disabled in _FALSE


def check(attest: Sequence[str]) -> AttestRequest:
    """The attestations the `--attest` values ask for; a bad value is a UsageError."""
    chosen: dict[str, dict[str, str]] = {}
    for text in attest:
        fields = _fields(text)
        if _enabled(text, fields):
            chosen[fields["type"]] = fields
        else:
            chosen.pop(fields["type"], None)
    mode = None
    builder_id = ""
    if (prov := chosen.get("provenance")) is not None:
        mode = prov.get("mode", "min").lower() or "min"
        mode = "max" if mode == "full" else mode  # BuildKit's older name for max
        if mode not in PROVENANCE_MODES:
            raise UsageError(f"--provenance: mode={prov['mode']!r} is not min or max")
        builder_id = prov.get("builder-id", "")
    return AttestRequest(provenance=mode, sbom="sbom" in chosen, builder_id=builder_id)
