"""Platforms (os/architecture/variant), the host's, and which image fits a wanted one.

Matching follows containerd's platform matcher, which BuildKit and Docker use: both
sides are normalized first (arm64/v8 is arm64, a bare arm is arm/v7, amd64/v1 is amd64),
and a wanted variant accepts older ones of the same architecture, best first: arm/v7
takes v7, then v6, then v5; amd64/v3 takes v3, v2, then plain amd64. A platform named
without a variant (linux/amd64, as the host's is) takes any variant of its
architecture when the ladder finds none, as ocibuild always did: the host's CPU level
is not probed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

_ARCH = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


@dataclass(frozen=True)
class Platform:
    """An OCI platform: os, architecture and variant (linux/arm64/v8)."""
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            d["variant"] = self.variant
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Platform:
        return cls(os=d.get("os", ""), architecture=d.get("architecture", ""),
                   variant=d.get("variant", ""))

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse 'os/arch[/variant]' (e.g. linux/arm64/v8)."""
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "")

    def matches(self, other: Platform) -> bool:
        """True when `other` (e.g. an index entry) satisfies this wanted platform."""
        return self.rank(other) is not None

    def rank(self, other: Platform) -> int | None:
        """How well `other` fits this wanted platform: 0 is exact, higher is an older
        variant the wanted one still runs; None when it does not fit."""
        want, have = self.normalized(), other.normalized()
        if (want.os, want.architecture) != (have.os, have.architecture):
            return None
        accepted = _accepted_variants(want)
        if accepted is None:  # an architecture without a variant ladder
            return 0 if not want.variant or want.variant == have.variant else None
        if have.variant in accepted:
            return accepted.index(have.variant)
        # no variant asked for: any of the architecture's, after those the ladder gives
        return len(accepted) if not self.variant else None

    def normalized(self) -> Platform:
        """The form containerd compares: arch aliases resolved, default variants made
        explicit (arm: v7) or dropped (arm64: v8, amd64: v1)."""
        arch, variant = _ALIASES.get(self.architecture.lower(), (self.architecture.lower(),
                                                                  self.variant))
        variant = variant or self.variant
        if arch == "arm64" and variant == "v8" or arch == "amd64" and variant == "v1":
            variant = ""
        elif arch == "arm" and not variant:
            variant = "v7"
        return Platform(self.os.lower(), arch, variant)

    @property
    def dirname(self) -> str:
        """The directory name buildx gives this platform's files: os_arch[_variant]."""
        return str(self).replace("/", "_")


_ALIASES = {"aarch64": ("arm64", ""), "x86_64": ("amd64", ""), "x86-64": ("amd64", ""),
            "i386": ("386", ""), "armhf": ("arm", "v7"), "armel": ("arm", "v6")}
_LADDERS = {"arm": ("v8", "v7", "v6", "v5"), "amd64": ("v4", "v3", "v2", "")}


def _accepted_variants(want: Platform) -> tuple[str, ...] | None:
    if want.architecture == "arm64":
        return (want.variant, "") if want.variant else ("",)
    ladder = _LADDERS.get(want.architecture)
    if ladder is None:
        return None
    return ladder[ladder.index(want.variant):] if want.variant in ladder else (want.variant,)


def parse_platforms(text: str) -> tuple[Platform, ...]:
    """A comma-separated --platform list, each os/arch[/variant], duplicates dropped
    (in the order given)."""
    found: dict[Platform, None] = {}
    for item in text.split(","):
        if item.strip():
            found.setdefault(Platform.parse(item), None)
    if not found:
        raise ValueError(f"invalid platform {text!r}: expected os/arch[/variant]")
    return tuple(found)


def host() -> Platform:
    machine = os.uname().machine.lower()  # platform.machine(), without that module's ~1 ms
    arch, variant = _ARCH.get(machine, (machine, ""))
    return Platform("linux", arch, variant)
