"""Entitlements: what a build must be granted (`--allow`) before a step may leave the
sandbox, as BuildKit's `network.host` and `security.insecure`.

A RUN asks for one with `--network=host` or `--security=insecure` (the build asks for
`network.host` with `--network=host`); a build that asks for an entitlement it was not
granted fails before any step runs. The messages keep BuildKit's "X is not allowed".
"""

from __future__ import annotations

from collections.abc import Iterable

from ocibuild.errors import UsageError

NETWORK_HOST = "network.host"
SECURITY_INSECURE = "security.insecure"
KNOWN = (NETWORK_HOST, SECURITY_INSECURE)
NETWORK_MODES = ("default", "none", "host")


def parse_allow(values: Iterable[str]) -> frozenset[str]:
    """The entitlements `--allow` values grant; each value may list several, separated
    by commas. An unknown one is a usage error that lists the known ones."""
    granted: set[str] = set()
    for value in values:
        for name in (part.strip() for part in value.split(",")):
            if not name:
                continue
            if name not in KNOWN:
                raise UsageError(f"--allow {name}: unknown entitlement "
                                 f"(known: {', '.join(KNOWN)})")
            granted.add(name)
    return frozenset(granted)


def check_build_network(network: str, granted: frozenset[str]) -> None:
    """Check the build's default network mode (`--network`) against what is granted."""
    if network not in NETWORK_MODES:
        raise UsageError(f"--network {network}: unknown network mode "
                         f"(known: {', '.join(NETWORK_MODES)})")
    if network == "host" and NETWORK_HOST not in granted:
        raise UsageError(not_allowed("--network=host", NETWORK_HOST))


def needed(network: str, security: str) -> tuple[tuple[str, str], ...]:
    """(flag, entitlement) for each entitlement a step with these modes needs."""
    out: list[tuple[str, str]] = []
    if network == "host":
        out.append(("--network=host", NETWORK_HOST))
    if security == "insecure":
        out.append(("--security=insecure", SECURITY_INSECURE))
    return tuple(out)


def not_allowed(what: str, entitlement: str) -> str:
    """The error for `what` (a flag, or a step and its flag) needing `entitlement`."""
    return (f"{what}: {entitlement} is not allowed; pass --allow {entitlement} to grant "
            "the entitlement")
