"""The build flags that shape every RUN step, parsed as `docker buildx build` parses them:
--add-host HOST:IP (or HOST=IP), --shm-size SIZE and --ulimit NAME=SOFT[:HARD]."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from ocibuild.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ipaddress import IPv4Address, IPv6Address

UNLIMITED = -1
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_HOST_GATEWAY = "host-gateway"


@functools.cache
def _size() -> re.Pattern[str]:
    return re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?", re.IGNORECASE)


@functools.cache
def _bad_host_chars() -> re.Pattern[str]:
    return re.compile(r"[\s#,]")


def parse_add_hosts(values: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Every --add-host value as (host, ip) lines for /etc/hosts, in the order given."""
    return tuple(line for value in values for line in parse_add_host(value))


def parse_shm_size(value: str | None) -> int:
    """--shm-size in bytes; 0 (not given, or given as 0) is the default, 64 MiB."""
    return 0 if value is None else parse_size(value)


def parse_ulimits(values: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
    """Every --ulimit as (name, soft, hard), one per name (the last given wins, as in
    Docker), sorted by name so that the order given does not change a step's key."""
    limits = {limit[0]: limit for limit in map(parse_ulimit, values)}
    return tuple(limits[name] for name in sorted(limits))


def parse_add_host(value: str) -> list[tuple[str, str]]:
    """HOST:IP or HOST=IP; IP may be in brackets ([::1]) and may list several addresses
    (HOST=IP1,IP2), one line each. The host name is lower-cased, as BuildKit does."""
    host, sep, ips = value.partition("=")
    if not sep:
        host, sep, ips = value.partition(":")  # the first colon: IPv6 addresses follow
    if not sep or not host or not ips:
        raise UsageError(f"--add-host {value!r}: expected HOST:IP or HOST=IP")
    if _bad_host_chars().search(host):
        raise UsageError(f"--add-host {value!r}: the host name {host!r} cannot contain "
                         "spaces, '#' or ','")
    if ips == _HOST_GATEWAY:
        raise UsageError(f"--add-host {value!r}: host-gateway is not supported (the "
                         "Docker daemon resolves it, and ocibuild has none); give the "
                         "host's IP address")
    import ipaddress  # here: ~1 ms, and most builds add no host

    lines = []
    for ip in ips.split(","):
        if len(ip) > 2 and ip[0] == "[" and ip[-1] == "]":
            ip = ip[1:-1]
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            address = None
        if address is None or getattr(address, "scope_id", None):  # Go refuses zones too
            raise UsageError(f"--add-host {value!r}: {ip!r} is not an IPv4 or IPv6 "
                             "address")
        lines.append((host.lower(), _ip_text(address)))
    return lines


def _ip_text(address: IPv4Address | IPv6Address) -> str:
    """As Go's net.IP prints it (what BuildKit writes): an IPv4-mapped IPv6 address in
    dotted form."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        return str(mapped)
    return str(address)


def parse_size(value: str, flag: str = "--shm-size") -> int:
    """Bytes from a size as Docker writes it: 1024, 64m, 1g, 1.5GiB, 512 kB (units are
    powers of 1024, any case)."""
    match = _size().fullmatch(value.strip())
    if match is None:
        raise UsageError(f"{flag} {value!r}: expected a size in bytes, or with a unit "
                         "k, m, g, t or p (e.g. 64m, 1g)")
    size = int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])
    if size >= 1 << 63:
        raise UsageError(f"{flag} {value!r}: too large")
    return size


def parse_ulimit(value: str) -> tuple[str, int, int]:
    """NAME=SOFT[:HARD] (HARD defaults to SOFT; -1 is unlimited) -> (name, soft, hard)."""
    name, sep, limits = value.partition("=")
    if not sep:
        raise UsageError(f"--ulimit {value!r}: expected NAME=SOFT[:HARD], e.g. "
                         "nofile=1024:2048")
    from ocibuild.sandbox.spec import ULIMITS  # Docker's names

    if name not in ULIMITS:
        raise UsageError(f"--ulimit {value!r}: unknown limit {name!r}; known: "
                         + ", ".join(sorted(ULIMITS)))
    parts = limits.split(":")
    if len(parts) > 2:
        raise UsageError(f"--ulimit {value!r}: expected at most two values, SOFT[:HARD]")
    numbers = []
    for part in parts:
        if not re.fullmatch(r"-1|\d+", part) or int(part) >= 1 << 63:
            raise UsageError(f"--ulimit {value!r}: {part!r} is not a limit (a number, or "
                             "-1 for unlimited)")
        numbers.append(int(part))
    soft, hard = numbers[0], numbers[-1]
    if hard != UNLIMITED and (soft == UNLIMITED or soft > hard):
        shown = "unlimited" if soft == UNLIMITED else str(soft)
        raise UsageError(f"--ulimit {value!r}: the soft limit ({shown}) is above the hard "
                         f"limit ({hard})")
    return name, soft, hard
