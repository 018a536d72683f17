"""A package an SBOM lists, as each package database scanner reports it."""

from __future__ import annotations

from dataclasses import dataclass

MAX_PACKAGES = 50_000  # more in one database is a hostile image, not a real one


@dataclass(frozen=True)
class Package:
    """A package an image's package database lists, as the SBOM records it."""
    kind: str  # "deb", "apk", "python": which database it came from
    name: str
    version: str
    purl: str
    source: str  # the database file it was read from, e.g. /var/lib/dpkg/status
    license: str = ""  # an SPDX license expression, when the package declares one
    supplier: str = ""  # a maintainer or author, as the database names them
    homepage: str = ""
    files: tuple[str, ...] = ()  # paths it owns as the database lists them (absolute)


def os_release(text: str) -> dict[str, str]:
    """The KEY=VALUE pairs of /etc/os-release (quotes removed)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            found[key] = value.strip().strip("\"'")
    return found
