"""Debian packages from dpkg's database in an image: `/var/lib/dpkg/status` and the
files of `status.d/` (one stanza each, as distroless images carry them), their files
from `info/PACKAGE[:ARCH].list` (for `status.d/NAME`, from `status.d/NAME.md5sums`),
their licenses from the machine-readable
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

from ocibuild.attest.imagefiles import Cap, SbomError
from ocibuild.attest.package import MAX_PACKAGES, Package
from ocibuild.attest.purl import purl

STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d/"
INFO = "var/lib/dpkg/info/"
DPKG_DISTROS = frozenset({"debian", "ubuntu", "devuan", "raspbian", "kali", "pureos"})
COPYRIGHT = re.compile(r"^usr/share/doc/[^/]+/copyright$")
_LIST = re.compile(r"^var/lib/dpkg/info/[^/]+\.list$")
# Debian's short license names that are not SPDX ids as written (the GNU families are
# worked out by _GNU); any other name that is an SPDX id in another case is taken as is
_SPDX_NAMES = {"expat": "MIT", "artistic": "Artistic-1.0-Perl", "public-domain": "",
               "bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause",
               "bsd-4-clause": "BSD-4-Clause", "psf-2": "PSF-2.0", "zlib": "Zlib"}
_SPDX_IDS = {i.lower(): i for i in (
    "MIT", "ISC", "Zlib", "Apache-1.0", "Apache-1.1", "Apache-2.0", "MPL-1.1", "MPL-2.0",
    "CC0-1.0", "CC-BY-3.0", "CC-BY-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "BSL-1.0",
    "OFL-1.1", "Unicode-DFS-2016", "Artistic-2.0", "X11", "curl", "OpenSSL", "WTFPL",
    "PSF-2.0", "Python-2.0", "0BSD", "Unlicense", "FTL", "IJG", "libpng", "bzip2-1.0.6")}
_GNU = re.compile(r"^(A?GPL|LGPL|GFDL)-(\d)(?:\.(\d))?(\+)?$", re.I)


def keep(path: str) -> Cap | None:
    """The size cap of the dpkg files an SBOM reads (None: not one of them)."""
    if path == STATUS:
        return Cap(64 << 20)
    if path.startswith(STATUS_D) and "/" not in path[len(STATUS_D):]:
        return Cap(8 << 20) if path.endswith(".md5sums") else Cap(1 << 20)
    if _LIST.match(path):
        return Cap(8 << 20)
    if COPYRIGHT.match(path):
        return Cap(256 << 10, strict=False)  # License: lines come first
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


def _spdx_id(name: str) -> str:
    key = name.lower()
    ident = _SPDX_NAMES.get(key, _SPDX_IDS.get(key))
    if ident is None and (gnu := _GNU.match(key)):
        family, major, minor, plus = gnu.groups()
        ident = f"{family.upper()}-{major}.{minor or 0}-" + ("or-later" if plus else "only")
    if ident is None:
        ident = "LicenseRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-")
    return ident


def spdx_license(names: list[str]) -> str:
    """DEP-5 `License:` values (one per paragraph: `GPL-2+ or Artistic`, `MIT, BSD-3-clause`)
    as one SPDX expression: each value's alternatives joined by OR, its conjunctions by
    AND, the values by AND; names that are not SPDX ids become LicenseRef-NAME."""
    terms: list[str] = []
    for name in names:
        words = re.split(r"\s+(or|and)\s+|\s*([|,])\s*", name.strip(), flags=re.I)
        parts, operators = [], []
        for i, word in enumerate(words):
            if i % 3 == 0:
                ident = _spdx_id(word.strip()) if word and word.strip() else ""
                if ident and ident != "LicenseRef-":
                    parts.append(ident)
            elif word:
                operators.append("OR" if word.lower() in ("or", "|") else "AND")
        if not parts:
            continue
        # one operator throughout, or (mixed, without the precedence DEP-5 leaves open)
        # read as all of them
        operator = operators[0] if len(set(operators)) == 1 else "AND"
        joined = f" {operator} ".join(parts)
        term = f"({joined})" if len(parts) > 1 and operator == "OR" else joined
        if term not in terms:
            terms.append(term)
    if len(terms) == 1 and terms[0].startswith("("):
        return terms[0][1:-1]
    return " AND ".join(terms)


def _copyright_licenses(text: str) -> list[str]:
    return [line.partition(":")[2].strip() for line in text.splitlines()
            if line.lower().startswith("license:") and line.partition(":")[2].strip()]


def _files(kept: Mapping[str, bytes], name: str, arch: str, source: str) -> tuple[str, ...]:
    if source != STATUS:  # distroless: `MD5  path` lines beside the stanza
        text = kept.get(f"{source}.md5sums", b"").decode("utf-8", "replace")
        return tuple("/" + line.split(None, 1)[1].lstrip("/")
                     for line in text.splitlines() if len(line.split(None, 1)) == 2)
    data = kept.get(f"{INFO}{name}:{arch}.list") or kept.get(f"{INFO}{name}.list") or b""
    return tuple(line for line in data.decode("utf-8", "replace").splitlines()
                 if line.startswith("/") and line not in ("/", "/."))


def scan(kept: Mapping[str, bytes], release: Mapping[str, str]) -> list[Package]:
    sources = [STATUS] + sorted(p for p in kept if p.startswith(STATUS_D)
                                and not p.endswith(".md5sums"))
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
                files=_files(kept, name, arch, source)))
    return found
