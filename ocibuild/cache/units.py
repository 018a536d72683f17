"""Sizes and durations as people type them (`--keep-storage 2GB`, `until=24h`)."""

from __future__ import annotations

import re

from ocibuild.errors import UsageError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_size(text: str) -> int:
    """Bytes in '512MB', '2g', '1.5GiB' or '1000' (k/m/g/t/p are powers of 1024, as
    docker's --keep-storage reads them)."""
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"invalid size {text!r} (e.g. 512MB, 10GB)")
    power = " kmgtp".index(m.group(2).lower() or " ")
    return int(float(m.group(1)) * 1024 ** power)


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration ('24h', '1h30m', '90s'), plus d and w."""
    s = text.strip()
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            raise UsageError(f"invalid duration {text!r} (e.g. 24h, 30m, 7d)")
        total += float(m.group(1)) * _SECONDS[m.group(2)]
        pos = m.end()
    if not s:
        raise UsageError("empty duration")
    return total


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.3g}{unit}"
        size /= 1000
    return f"{n}B"


def human_ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, length in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = int(seconds // length)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "Less than a minute ago" if seconds >= 1 else "Just now"
