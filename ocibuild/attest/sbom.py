"""An SPDX 2.3 SBOM (`https://spdx.dev/Document`) of an image's final filesystem, made
without a scanner image: the layers are streamed once (`imagefiles.py`) keeping only
the package databases, which one scanner per database reads (`dpkg.py`, `apk.py`,
`pydist.py`).

The document describes one package for the image itself (purpose CONTAINER), which
CONTAINS every package found; each package has its name, version, declared license
(NOASSERTION when it declares none), supplier, homepage and purl, and CONTAINS the
files it owns that the final image holds as regular files (following symlinked
directories such as `/lib -> usr/lib`). A file has its SHA-1 and SHA-256 and, as
BuildKit adds to the SBOMs it attaches, the layer it comes from as `layerID: DIGEST` in
its comment. An image with no package database (scratch, busybox) gets a document with
the image package alone. Packages are not "analyzed" in SPDX's sense (no verification
code), as syft reports them, so `filesAnalyzed` is false.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ocibuild.attest import Predicate, apk, dpkg, pydist
from ocibuild.attest.imagefiles import Cap, ImageFiles, read_image_files
from ocibuild.attest.package import Package, os_release
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layout import ImageLayout

PREDICATE_TYPE = "https://spdx.dev/Document"
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
NOASSERTION = "NOASSERTION"
IMAGE_ID = "SPDXRef-DocumentRoot-Image"


def _keep(path: str) -> Cap | None:
    if path in OS_RELEASE:
        return Cap(64 << 10, strict=False)
    for scanner in (dpkg.keep, apk.keep, pydist.keep):
        if (cap := scanner(path)) is not None:
            return cap
    return None


def scan_image(layout: ImageLayout, layers: Sequence[Descriptor]
               ) -> tuple[list[Package], ImageFiles]:
    """The packages of the image `layers` make (blobs in `layout`), and its files."""
    files = read_image_files(layout, layers, _keep)
    release_text = next((files.kept[p] for p in OS_RELEASE if p in files.kept), b"")
    release = os_release(release_text.decode("utf-8", "replace"))
    packages = [*dpkg.scan(files.kept, release), *apk.scan(files.kept, release),
                *pydist.scan(files.kept)]
    return packages, files


def _spdx_id(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9.-]+", "-", parts[0])[:60].strip("-")
    return f"SPDXRef-{prefix}-{readable}-{digest}" if readable else f"SPDXRef-{prefix}-{digest}"


def _package(pkg: Package, ident: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": pkg.name, "SPDXID": ident, "versionInfo": pkg.version,
        "supplier": f"Person: {pkg.supplier}" if pkg.supplier else NOASSERTION,
        "downloadLocation": NOASSERTION, "filesAnalyzed": False,
        "licenseConcluded": NOASSERTION, "licenseDeclared": pkg.license or NOASSERTION,
        "copyrightText": NOASSERTION,
        "sourceInfo": f"acquired package info from {pkg.source}",
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                          "referenceLocator": pkg.purl}],
    }
    if pkg.homepage:
        out["homepage"] = pkg.homepage
    return out


def document(packages: Sequence[Package], files: ImageFiles, *, name: str, creator: str,
             created: datetime | None = None) -> dict[str, Any]:
    """The SPDX 2.3 JSON document of an image named `name` holding `packages`."""
    when = (created or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    root = {"name": name, "SPDXID": IMAGE_ID, "downloadLocation": NOASSERTION,
            "filesAnalyzed": False, "licenseConcluded": NOASSERTION,
            "licenseDeclared": NOASSERTION, "copyrightText": NOASSERTION,
            "primaryPackagePurpose": "CONTAINER"}
    spdx_packages: list[dict[str, Any]] = [root]
    spdx_files: dict[str, dict[str, Any]] = {}
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": IMAGE_ID}]
    for pkg in packages:
        ident = _spdx_id(f"Package-{pkg.kind}", pkg.name, pkg.purl, pkg.source)
        spdx_packages.append(_package(pkg, ident))
        relationships.append({"spdxElementId": IMAGE_ID, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": ident})
        for path in dict.fromkeys(pkg.files):
            found = files.resolve(path)
            if found is None:
                continue
            if path not in spdx_files:
                info = files.files[found]
                spdx_files[path] = {
                    "fileName": path, "SPDXID": _spdx_id("File", path),
                    "checksums": [{"algorithm": "SHA1", "checksumValue": info.sha1},
                                  {"algorithm": "SHA256", "checksumValue": info.sha256}],
                    "licenseConcluded": NOASSERTION, "copyrightText": NOASSERTION,
                    "comment": f"layerID: {info.layer}"}
            relationships.append({"spdxElementId": ident, "relationshipType": "CONTAINS",
                                  "relatedSpdxElement": spdx_files[path]["SPDXID"]})
    return {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"https://spdx.org/spdxdocs/ocibuild-{uuid.uuid4()}",
        "creationInfo": {"created": when, "creators": [f"Tool: {creator}"]},
        "packages": spdx_packages, "files": list(spdx_files.values()),
        "relationships": relationships,
    }


def sbom(layout: ImageLayout, layers: Sequence[Descriptor], *, name: str,
         creator: str) -> Predicate:
    """The SBOM predicate of the image `layers` make."""
    packages, files = scan_image(layout, layers)
    return Predicate(PREDICATE_TYPE, document(packages, files, name=name, creator=creator))
