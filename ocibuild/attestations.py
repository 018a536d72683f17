"""Attestation requests (`--provenance`, `--sbom`, `--attest`), as `docker buildx build`
takes them. ocibuild makes no attestations yet: a request that disables one is accepted
(CI scripts pass `--provenance=false` to keep buildx from adding an index), and one that
enables one is refused rather than silently left out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ocibuild.errors import UsageError

KINDS = ("provenance", "sbom")
_FALSE = ("false", "0")
_TRUE = ("true", "1")


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


def check(attest: Sequence[str]) -> None:
    """Refuse every attestation that a value asks for; accept those it disables."""
    for text in attest:
        fields = _fields(text)
        kind = fields.get("type", "")
        if kind not in KINDS:
            raise UsageError(f"--attest {text}: unknown type {kind!r} (known: "
                             f"{', '.join(KINDS)})")
        disabled = fields.get("disabled", "false").lower()
        if disabled not in (*_TRUE, *_FALSE):
            raise UsageError(f"--attest {text}: disabled={fields['disabled']!r} is not "
                             "true or false")
        if disabled in _FALSE:
            flag = f"--{kind}" if kind in KINDS else "--attest"
            raise UsageError(f"{flag}: {kind} attestations are not supported yet; pass "
                             f"{flag}=false (or leave it out) to build without one")
