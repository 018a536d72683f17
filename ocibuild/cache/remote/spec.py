"""`--cache-to` / `--cache-from` values, parsed as buildx does (CSV key=value pairs)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

from ocibuild.errors import UsageError

CACHE_TYPES = ("registry", "local")
MODES = ("min", "max")
COMPRESSIONS = ("gzip", "zstd")
DEFAULT_TAG = "latest"


@dataclass(frozen=True)
class CacheSpec:
    """A parsed --cache-from / --cache-to value."""

    type: str  # "registry" | "local"
    attrs: dict[str, str] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return self.attrs.get("mode", "min")

    @property
    def ignore_error(self) -> bool:
        return self.attrs.get("ignore-error", "false").lower() in ("true", "1")

    @property
    def ref(self) -> str:
        return self.attrs.get("ref", "")

    @property
    def sign_key(self) -> str:
        """--cache-to sign-key=: the private key that signs the cache manifest."""
        return self.attrs.get("sign-key", "")

    @property
    def verify_key(self) -> str:
        """--cache-from verify-key=: a cache not signed with this key is not used."""
        return self.attrs.get("verify-key", "")

    @property
    def tag(self) -> str:
        return self.attrs.get("tag") or DEFAULT_TAG

    def __str__(self) -> str:
        where = self.ref or self.attrs.get("dest") or self.attrs.get("src") or ""
        return f"type={self.type},{where}"


def parse_cache_spec(text: str, *, export: bool) -> CacheSpec:
    """One --cache-to (export=True) or --cache-from value. A bare value of --cache-from
    is a registry reference, as buildx reads it."""
    flag = "--cache-to" if export else "--cache-from"
    text = text.strip()
    if not text:
        raise UsageError(f"empty {flag}")
    if "=" not in text:
        return _checked(CacheSpec("registry", {"ref": text}), text, flag, export)
    attrs: dict[str, str] = {}
    for item in next(csv.reader([text])):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise UsageError(f"{flag} {text}: {item!r} is not key=value")
        attrs[key] = value.strip()
    kind = attrs.pop("type", "registry")
    if kind not in CACHE_TYPES:
        raise UsageError(f"{flag} {text}: unknown type {kind!r} "
                         f"(use {' or '.join(CACHE_TYPES)})")
    return _checked(CacheSpec(kind, attrs), text, flag, export)


def _checked(spec: CacheSpec, text: str, flag: str, export: bool) -> CacheSpec:
    a = spec.attrs
    if spec.type == "registry" and not a.get("ref"):
        raise UsageError(f"{flag} {text}: type=registry needs ref=REGISTRY/REPOSITORY[:TAG]")
    if spec.type == "local":
        need = "dest" if export else "src"
        if not a.get(need):
            raise UsageError(f"{flag} {text}: type=local needs {need}=DIR")
    own, other = ("sign-key", "verify-key") if export else ("verify-key", "sign-key")
    if a.get(other) is not None:
        raise UsageError(f"{flag} {text}: {other}= belongs to "
                         f"{'--cache-from' if export else '--cache-to'}")
    if own in a and (spec.type != "registry" or not a[own]):
        raise UsageError(f"{flag} {text}: {own}=KEY needs a key file and type=registry")
    if export:
        if spec.mode not in MODES:
            raise UsageError(f"{flag} {text}: mode must be min or max, not {spec.mode!r}")
        if a.get("compression", "gzip") not in COMPRESSIONS:
            raise UsageError(f"{flag} {text}: compression must be gzip or zstd")
    return spec
