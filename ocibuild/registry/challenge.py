"""`WWW-Authenticate` challenges (RFC 7235) as registries send them."""

from __future__ import annotations

from ocibuild.deferred import deferred_dataclass

# re is imported, and this compiled, on first use (re caches it): a registry without
# auth sends no challenge, and the rebuild memo's question then loads no re at all
_PARAM = r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?'


@deferred_dataclass(frozen=True)
class Challenge:
    """A WWW-Authenticate challenge: its scheme and parameters (realm, service, scope)."""
    scheme: str  # lower case: "bearer" or "basic"
    params: dict[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        scope = self.params.get("scope", "")
        return tuple(s for s in scope.split(" ") if s)


def parse_challenges(header: str) -> list[Challenge]:
    """All challenges in one header value, e.g. `Bearer realm="…",service="…"`."""
    import re

    challenges: list[Challenge] = []
    rest = header.strip()
    while rest:
        m = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", rest)
        if not m:
            break
        scheme = m.group(1).lower()
        rest = rest[m.end():]
        params: dict[str, str] = {}
        while True:
            pm = re.match(_PARAM, rest)
            if not pm:
                break
            value = pm.group(2) if pm.group(2) is not None else pm.group(3)
            params[pm.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            rest = rest[pm.end():]
        challenges.append(Challenge(scheme, params))
        rest = rest.lstrip(", ")
    return challenges


def pick_challenge(header: str) -> Challenge | None:
    """The challenge we answer: Bearer before Basic."""
    found = {c.scheme: c for c in parse_challenges(header)}
    return found.get("bearer") or found.get("basic")
