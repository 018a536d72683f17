"""Python distributions installed in an image: each `*.dist-info` directory's `METADATA`
(email-header fields `Name`, `Version`, `License-Expression` or `License`, license
classifiers, `Author`, `Home-page`) and its `RECORD` (CSV rows `path,hash,size`, paths
relative to the directory that holds the dist-info, i.e. site-packages).

The license is `License-Expression` when given (PEP 639), else the `License` field when
it is a single SPDX-like id, else the OSI classifiers' names mapped to SPDX ids where
known. The purl is `pkg:pypi/NAME@VERSION` with the name normalized (PEP 503).
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
from collections.abc import Mapping
from email.parser import HeaderParser

from ocibuild.attest.imagefiles import Cap, SbomError
from ocibuild.attest.package import MAX_PACKAGES, Package
from ocibuild.attest.purl import purl

_DIST_INFO = re.compile(r"^(?:.*/)?[^/]+\.dist-info/(METADATA|RECORD)$")
_SPDX_ID = re.compile(r"^[A-Za-z0-9.+-]+$")
_CLASSIFIERS = {
    "MIT License": "MIT", "BSD License": "BSD-3-Clause",
    "Apache Software License": "Apache-2.0", "ISC License (ISCL)": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Python Software Foundation License": "PSF-2.0",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
}


def keep(path: str) -> Cap | None:
    match = _DIST_INFO.match(path)
    if match is None:
        return None
    return Cap(1 << 20) if match.group(1) == "METADATA" else Cap(8 << 20)


def _license(meta: Mapping[str, str], classifiers: list[str]) -> str:
    if expression := meta.get("License-Expression", "").strip():
        return expression
    declared = meta.get("License", "").strip()
    if declared and _SPDX_ID.match(declared) and "\n" not in declared:
        return declared
    found = [_CLASSIFIERS[c.rsplit("::", 1)[-1].strip()] for c in classifiers
             if c.startswith("License ::") and c.rsplit("::", 1)[-1].strip() in _CLASSIFIERS]
    return " AND ".join(dict.fromkeys(found))


def _record_files(site: str, data: bytes) -> tuple[str, ...]:
    files = []
    for row in csv.reader(io.StringIO(data.decode("utf-8", "replace"))):
        if row and row[0]:
            files.append(posixpath.normpath("/" + posixpath.join(site, row[0])))
    return tuple(files)


def scan(kept: Mapping[str, bytes]) -> list[Package]:
    found: list[Package] = []
    for path in sorted(p for p in kept if p.endswith(".dist-info/METADATA")):
        message = HeaderParser().parsestr(kept[path].decode("utf-8", "replace"))
        name, version = (message.get("Name") or "").strip(), (message.get("Version") or "")
        if not name or not version.strip():
            continue
        if len(found) >= MAX_PACKAGES:
            raise SbomError(f"the image holds more than {MAX_PACKAGES} Python distributions")
        dist_info = path.rpartition("/")[0]
        site = dist_info.rpartition("/")[0]
        meta = {k: str(v) for k, v in message.items()}
        normalized = re.sub(r"[-_.]+", "-", name).lower()
        found.append(Package(
            "python", name, version.strip(), purl("pypi", "", normalized, version.strip()),
            "/" + path, license=_license(meta, message.get_all("Classifier") or []),
            supplier=(message.get("Author") or message.get("Author-email") or "").strip(),
            homepage=(message.get("Home-page") or "").strip(),
            files=_record_files(site, kept.get(f"{dist_info}/RECORD", b""))))
    return found
