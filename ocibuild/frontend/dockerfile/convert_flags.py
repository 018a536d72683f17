"""Flag values the converter interprets: HEALTHCHECK durations, COPY --chmod."""

from __future__ import annotations

import re

from ocibuild.errors import OcibuildError


class FlagError(OcibuildError):
    pass


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration(text: str, what: str) -> int:
    """A Go duration ("30s", "1m30s") in nanoseconds."""
    if text in ("0", ""):
        return 0
    total, pos = 0.0, 0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise FlagError(f"HEALTHCHECK: invalid duration for --{what}: {text!r}")
    return int(total)


def parse_chmod(text: str) -> int:
    if not re.fullmatch(r"[0-7]{1,4}", text):
        raise FlagError(f"invalid --chmod value {text!r}: expected an octal mode like 0755")
    return int(text, 8)
