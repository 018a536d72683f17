"""The SBOM scanners on real layer blobs: the fixture tree's dpkg, apk and Python
databases become packages with versions, licenses, purls and the files they own (one
reached through a symlink); whiteouts in a later layer remove what they hide; an image
with no database gives a document with the image alone; a hostile database is refused
with a message naming the limit. Every document validates as SPDX 2.3."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from ocibuild.attest.imagefiles import SbomError
from ocibuild.attest.package import MAX_PACKAGES
from ocibuild.attest.sbom import document, scan_image
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.mediatypes import OCI_LAYER
from tests.attest.schema_check import validate_spdx
from tests.support.paths import REPO

TREE = REPO / "fixtures" / "sbom-tree" / "rootfs"


def _layer(layout: ImageLayout, entries: dict[str, bytes | str | None]) -> Descriptor:
    """An uncompressed layer: bytes are files, str symlink targets, None directories."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    data = buf.getvalue()
    return Descriptor(OCI_LAYER, layout.put_bytes(data), len(data))


def _tree_entries(root: Path) -> dict[str, bytes | str | None]:
    found: dict[str, bytes | str | None] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = str(path.readlink())
        elif path.is_dir():
            found[rel] = None
        else:
            found[rel] = path.read_bytes()
    return found


@pytest.fixture
def layout(tmp_path: Path) -> ImageLayout:
    return ImageLayout.init(tmp_path / "layout")


def _doc(layout: ImageLayout, layers: list[Descriptor]) -> dict:
    packages, files = scan_image(layout, layers)
    doc = document(packages, files, name="test/image:1", creator="ocibuild-test")
    validate_spdx(doc)
    return doc


def _by_name(doc: dict) -> dict[str, dict]:
    return {p["name"]: p for p in doc["packages"]}


def _files_of(doc: dict, name: str) -> set[str]:
    ident = _by_name(doc)[name]["SPDXID"]
    names = {f["SPDXID"]: f["fileName"] for f in doc["files"]}
    return {names[r["relatedSpdxElement"]] for r in doc["relationships"]
            if r["spdxElementId"] == ident and r["relationshipType"] == "CONTAINS"}


def test_the_fixture_trees_databases_become_packages(layout: ImageLayout) -> None:
    base = _layer(layout, {"bin/busybox": b"\x7fELF busybox\n"})
    tree = _layer(layout, _tree_entries(TREE))
    doc = _doc(layout, [base, tree])

    found = {name: (p.get("versionInfo"), p["licenseDeclared"],
                    p.get("externalRefs", [{}])[0].get("referenceLocator"))
             for name, p in _by_name(doc).items()}
    assert found == {
        "test/image:1": (None, "NOASSERTION", None),
        "base-files": ("12.4+deb12u5", "NOASSERTION",
                       "pkg:deb/debian/base-files@12.4+deb12u5?arch=amd64&distro=debian-12"),
        "zlib1g": ("1:1.2.13.dfsg-1", "Zlib", "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1"
                   "?arch=amd64&distro=debian-12&upstream=zlib"),
        "tzdata": ("2024a-0+deb12u1", "NOASSERTION",
                   "pkg:deb/debian/tzdata@2024a-0+deb12u1?arch=all&distro=debian-12"),
        "musl": ("1.2.4-r2", "MIT", "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64"),
        "zlib": ("1.3.1-r0", "Zlib", "pkg:apk/alpine/zlib@1.3.1-r0?arch=x86_64"),
        "six": ("1.16.0", "MIT", "pkg:pypi/six@1.16.0"),
    }
    assert "libfoo-old" not in found  # removed, only its conffiles left
    assert _files_of(doc, "zlib1g") == {  # the symlink's target is the file it names
        "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13", "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/share/doc/zlib1g/copyright"}
    assert _files_of(doc, "musl") == {"/lib/ld-musl-x86_64.so.1"}  # the other is absent
    assert _files_of(doc, "tzdata") == {"/usr/share/zoneinfo/UTC"}  # from status.d/'s md5sums
    assert _files_of(doc, "six") == {
        "/usr/lib/python3/dist-packages/six.py",
        "/usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
        "/usr/lib/python3/dist-packages/six-1.16.0.dist-info/RECORD"}
    six = next(f for f in doc["files"] if f["fileName"].endswith("/six.py"))
    content = (TREE / "usr/lib/python3/dist-packages/six.py").read_bytes()
    assert six["checksums"] == [
        {"algorithm": "SHA1", "checksumValue": hashlib.sha1(content).hexdigest()},
        {"algorithm": "SHA256", "checksumValue": hashlib.sha256(content).hexdigest()}]
    assert six["comment"] == f"layerID: {tree.digest}"  # the layer it comes from


def test_whiteouts_remove_what_lower_layers_installed(layout: ImageLayout) -> None:
    status = (TREE / "var/lib/dpkg/status").read_bytes()
    lower = _layer(layout, {"var/lib/dpkg/status": status,
                            "var/lib/dpkg/status.d/tzdata":
                                (TREE / "var/lib/dpkg/status.d/tzdata").read_bytes(),
                            "usr/lib/python3/six-1.16.0.dist-info/METADATA":
                                (TREE / "usr/lib/python3/dist-packages/six-1.16.0.dist-info"
                                        "/METADATA").read_bytes()})
    upper = _layer(layout, {"var/lib/dpkg/status.d/.wh..wh..opq": b"",
                            "usr/lib/python3/.wh.six-1.16.0.dist-info": b"",
                            "var/lib/dpkg/.wh.status": b""})
    assert set(_by_name(_doc(layout, [lower]))) == {"test/image:1", "base-files", "zlib1g",
                                                    "tzdata", "six"}
    assert set(_by_name(_doc(layout, [lower, upper]))) == {"test/image:1"}


def test_an_image_without_a_package_database_lists_only_itself(layout: ImageLayout) -> None:
    doc = _doc(layout, [_layer(layout, {"bin": None, "bin/busybox": b"\x7fELF\n",
                                        "bin/sh": "busybox"})])
    assert [p["name"] for p in doc["packages"]] == ["test/image:1"]
    assert doc["files"] == []


@pytest.mark.parametrize(("entries", "message"), [
    ({"var/lib/dpkg/status.d/big": b"Package: x\n" + b"#" * (1 << 20)},
     "/var/lib/dpkg/status.d/big in layer"),
    ({"var/lib/dpkg/status": b"".join(
        b"Package: p%d\nStatus: install ok installed\nVersion: 1\n\n" % i
        for i in range(MAX_PACKAGES + 1))},
     f"/var/lib/dpkg/status lists more than {MAX_PACKAGES} packages"),
])
def test_a_hostile_database_is_refused_naming_the_limit(layout: ImageLayout, entries: dict,
                                                        message: str) -> None:
    with pytest.raises(SbomError, match=message):
        scan_image(layout, [_layer(layout, entries)])


def test_odd_but_valid_layers_are_read_as_extraction_would(layout: ImageLayout) -> None:
    """A directory listed after its files keeps them; a symlink loop owns nothing; a
    file replacing a lower directory hides what was under it."""
    status = (TREE / "var/lib/dpkg/status").read_bytes()
    lists = {f"var/lib/dpkg/info/{n}": (TREE / "var/lib/dpkg/info" / n).read_bytes()
             for n in ("base-files.list", "zlib1g:amd64.list")}
    lower = _layer(layout, {"var/lib/dpkg/status": status, **lists,
                            "etc/debian_version": b"12\n", "usr/lib/x86_64-linux-gnu":
                                None, "usr/lib/x86_64-linux-gnu/libz.so.1.2.13": b"z\n"})
    upper = _layer(layout, {"usr/lib/x86_64-linux-gnu/libz.so.1": "libz.so.1",
                            "etc/debian_version/x": b"", "etc/debian_version": None,
                            "var/lib/dpkg": None})
    doc = _doc(layout, [lower, upper])
    assert _files_of(doc, "zlib1g") == {"/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"}
    assert _files_of(doc, "base-files") == set()  # /etc/debian_version is a directory now
