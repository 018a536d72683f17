"""Alpine packages from apk's database in an image, `/lib/apk/db/installed`: one record
per package separated by blank lines, one `K:value` line per field (`P` name, `V`
version, `A` arch, `L` license, `o` origin, `m` maintainer, `U` url); a package's files
are its `R:` lines, each under the `F:` directory before it.

The purl is Alpine's: `pkg:apk/ID/NAME@VERSION?arch=ARCH&distro=ID-VERSION_ID`, with
the origin as `upstream` when it differs from the name; ID is os-release's when it names
an apk distribution, else `alpine` (without a distro).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from ocibuild.attest.imagefiles import Cap, SbomError
from ocibuild.attest.package import MAX_PACKAGES, Package
from ocibuild.attest.purl import purl

INSTALLED = "lib/apk/db/installed"
APK_DISTROS = frozenset({"alpine", "wolfi", "chainguard", "postmarketos", "adelie"})
_SPDX_ID = re.compile(r"^[A-Za-z0-9.+-]+$")


def keep(path: str) -> Cap | None:
    return Cap(64 << 20) if path == INSTALLED else None


def records(text: str) -> Iterator[tuple[dict[str, str], list[str]]]:
    """Each package's fields and its files (paths relative to the root)."""
    fields: dict[str, str] = {}
    files: list[str] = []
    directory = ""
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if fields:
                yield fields, files
            fields, files, directory = {}, [], ""
            continue
        key, sep, value = line.partition(":")
        if not sep or len(key) != 1:
            continue
        if key == "F":
            directory = value.strip("/")
        elif key == "R":
            files.append(f"{directory}/{value}" if directory else value)
        else:
            fields.setdefault(key, value)


def spdx_license(text: str) -> str:
    """apk's license field (SPDX ids separated by spaces, or an expression)."""
    words = text.split()
    if not words:
        return ""
    if any(w.upper() in ("AND", "OR", "WITH") for w in words):
        return " ".join(w.upper() if w.upper() in ("AND", "OR", "WITH") else w for w in words)
    return " AND ".join(w if _SPDX_ID.match(w) else
                        "LicenseRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", w).strip("-")
                        for w in words)


def scan(kept: Mapping[str, bytes], release: Mapping[str, str]) -> list[Package]:
    data = kept.get(INSTALLED)
    if data is None:
        return []
    ours = release.get("ID") in APK_DISTROS  # else os-release describes another system
    distro_id = release["ID"] if ours else "alpine"
    distro = f"{distro_id}-{release['VERSION_ID']}" if ours and release.get("VERSION_ID") \
        else ""
    found: list[Package] = []
    for fields, files in records(data.decode("utf-8", "replace")):
        name, version = fields.get("P", ""), fields.get("V", "")
        if not name or not version:
            continue
        if len(found) >= MAX_PACKAGES:
            raise SbomError(f"/{INSTALLED} lists more than {MAX_PACKAGES} packages")
        origin = fields.get("o", "")
        qualifiers = {"arch": fields.get("A", ""), "distro": distro,
                      "upstream": origin if origin != name else ""}
        found.append(Package(
            "apk", name, version, purl("apk", distro_id, name, version, qualifiers),
            "/" + INSTALLED, license=spdx_license(fields.get("L", "")),
            supplier=fields.get("m", ""), homepage=fields.get("U", ""),
            files=tuple("/" + f for f in files)))
    return found
