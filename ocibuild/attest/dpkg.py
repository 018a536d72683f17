"""Debian packages from dpkg's database in an image: `/var/lib/dpkg/status` and the
files of `status.d/` (one stanza each, as distroless images carry them), their files
from `info/PACKAGE[:ARCH].list`, their licenses from the machine-readable
`/usr/share/doc/PACKAGE/copyright` (DEP-5 `License:` fields) when there is one.

Only stanzas whose `Status` says installed count (a removed package leaves a stanza
with `deinstall ok config-files`). The purl is Debian's: `pkg:deb/ID/NAME@VERSION?
arch=ARCH&distro=ID-VERSION_ID`, with ID from os-release when it names a Debian-like
system (else `debian`, without a distro) and the upstream source name when it differs
from the package's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from ocibuild.attest.imagefiles import SbomError
from ocibuild.attest.package import MAX_PACKAGES, Package
from ocibuild.attest.purl import purl

STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d/"
INFO = "var/lib/dpkg/info/"
DPKG_DISTROS = frozenset({"debian", "ubuntu", "devuan", "raspbian", "kali", "pureos"})
COPYRIGHT = re.compile(r"^usr/share/doc/[^/]+/copyright$")
_LIST = re.compile(r"^var/lib/dpkg/info/[^/]+\.list$")
# Debian's short license names for the common licenses, as SPDX ids
_SPDX_NAMES = {
    "gpl-2": "GPL-2.0-only", "gpl-2+": "GPL-2.0-or-later", "gpl-3": "GPL-3.0-only",
    "gpl-3+": "GPL-3.0-or-later", "lgpl-2": "LGPL-2.0-only", "lgpl-2+": "LGPL-2.0-or-later",
    "lgpl-2.1": "LGPL-2.1-only", "lgpl-2.1+": "LGPL-2.1-or-later", "lgpl-3": "LGPL-3.0-only",
    "lgpl-3+": "LGPL-3.0-or-later", "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause", "expat": "MIT", "mit": "MIT", "zlib": "Zlib",
    "apache-2.0": "Apache-2.0", "artistic": "Artistic-1.0-Perl", "public-domain": "",
    "isc": "ISC", "mpl-2.0": "MPL-2.0", "gfdl-1.3+": "GFDL-1.3-or-later",
}


def keep(path: str) -> int | None:
    """The size cap of the dpkg files an SBOM reads (None: not one of them)."""
    if path == STATUS:
        return 64 << 20
    if path.startswith(STATUS_D) and "/" not in path[len(STATUS_D):]:
        return 1 << 20
    if _LIST.match(path):
        return 8 << 20
    if COPYRIGHT.match(path):
        return 256 << 10
    return None


def stanzas(text: str) -> Iterator[dict[str, str]]:
    """The paragraphs of a dpkg status file, continuation lines joined."""
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, ""
        elif line[0] in " \t":
            if key:
                fields[key] += "\n" + line.strip()
        else:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
    if fields:
        yield fields


def spdx_license(names: list[str]) -> str:
    """DEP-5 license names as one SPDX expression (LicenseRef- for unknown ones)."""
    found: list[str] = []
    for name in names:
        for part in re.split(r"\s+(?:or|and)\s+|\s*[|,]\s*", name.strip(), flags=re.I):
            key = part.strip().lower()
            if not key:
                continue
            ident = _SPDX_NAMES.get(key)
            if ident is None:
                ident = "LicenseRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", part.strip()).strip("-")
            if ident and ident not in found:
                found.append(ident)
    return " AND ".join(found)


def _copyright_licenses(text: str) -> list[str]:
    return [line.partition(":")[2].strip() for line in text.splitlines()
            if line.lower().startswith("license:") and line.partition(":")[2].strip()]


def _files(kept: Mapping[str, bytes], name: str, arch: str) -> tuple[str, ...]:
    data = kept.get(f"{INFO}{name}:{arch}.list") or kept.get(f"{INFO}{name}.list") or b""
    return tuple(line for line in data.decode("utf-8", "replace").splitlines()
                 if line.startswith("/") and line not in ("/", "/."))


def scan(kept: Mapping[str, bytes], release: Mapping[str, str]) -> list[Package]:
    sources = [STATUS] + sorted(p for p in kept if p.startswith(STATUS_D))
    ours = release.get("ID") in DPKG_DISTROS or "debian" in release.get("ID_LIKE", "").split()
    distro_id = release["ID"] if ours else "debian"
    distro = f"{distro_id}-{release['VERSION_ID']}" if ours and release.get("VERSION_ID") \
        else ""
    found: list[Package] = []
    for source in sources:
        if source not in kept:
            continue
        for fields in stanzas(kept[source].decode("utf-8", "replace")):
            if source == STATUS and "installed" not in fields.get("status", "").split():
                continue
            name, version = fields.get("package", ""), fields.get("version", "")
            if not name or not version:
                continue
            if len(found) >= MAX_PACKAGES:
                raise SbomError(f"/{source} lists more than {MAX_PACKAGES} packages")
            arch = fields.get("architecture", "")
            upstream = fields.get("source", "").split(" ")[0]
            copyright_text = kept.get(f"usr/share/doc/{name}/copyright", b"")
            qualifiers = {"arch": arch, "distro": distro,
                          "upstream": upstream if upstream != name else ""}
            found.append(Package(
                "deb", name, version, purl("deb", distro_id, name, version, qualifiers),
                "/" + source,
                license=spdx_license(_copyright_licenses(copyright_text.decode("utf-8",
                                                                              "replace"))),
                supplier=fields.get("maintainer", ""), homepage=fields.get("homepage", ""),
                files=_files(kept, name, arch)))
    return found
