"""`--provenance` and `--sbom` on a pushed build, read back from the registry as a user
would: `skopeo inspect --raw` of the tag is an OCI index of the image and its
attestation manifest (laid out as BuildKit lays it out), whose in-toto statements name
the image, validate against the in-toto and SPDX 2.3 schemas, and say what the build
read (the base image's digest, the Dockerfile's, the build args) and what the image
holds (the fixture tree's dpkg, apk and Python packages). `--provenance=false
--sbom=false` gives the plain manifest of the same image, as buildx does."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.attest.schema_check import validate_spdx, validate_statement
from tests.build.conftest import give_to, image_digest
from tests.registry.conftest import BaseImages
from tests.registry.test_build_integration import build, push_base
from tests.support.paths import REPO
from tests.support.registry_server import RegistryServer
from tests.support.users import User, remove_tree

ANNOTATIONS = {"vnd.docker.reference.type": "attestation-manifest"}


def _inspect_raw(server: RegistryServer, ref: str) -> dict[str, Any]:
    out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                          f"docker://{ref}"], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    return json.loads(out)


def _blob(server: RegistryServer, repo: str, digest: str) -> bytes:
    url = f"http://{server.host}/v2/{repo}/blobs/{digest}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        data = resp.read()
    assert hashlib.sha256(data).hexdigest() == digest.removeprefix("sha256:")
    return data


@pytest.fixture(scope="module")
def attested(http_registry: RegistryServer, images: BaseImages, sub_user: User,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One pushed `--provenance=mode=max --sbom=true` build of the fixture tree on the
    busybox base, then the same without attestations."""
    server, tmp = http_registry, tmp_path_factory.mktemp("attest")
    base_ref = f"{server.host}/att/busybox:1"
    push_base(server, images, base_ref, tmp)
    work = sub_user.make_tempdir()
    try:
        yield _build_both(server, images, sub_user, work, base_ref)
    finally:
        remove_tree(work)


def _build_both(server: RegistryServer, images: BaseImages, sub_user: User, work: Path,
                base_ref: str) -> dict[str, Any]:
    ctx = work / "ctx"
    shutil.copytree(REPO / "fixtures" / "sbom-tree", ctx, symlinks=True)
    dockerfile = (f"FROM {base_ref}\nARG GREETING=hi\nCOPY rootfs/ /\n"
                  "LABEL greeting=${GREETING}\n").encode()
    (ctx / "Dockerfile").write_bytes(dockerfile)
    give_to(ctx, sub_user)
    ref = f"{server.host}/att/app:1"
    proc = build(sub_user, work, "-t", ref, "--push", "--provenance=mode=max", "--sbom=true",
                 "--build-arg", "GREETING=hello", "--metadata-file", work / "meta.json", ctx)
    plain_ref = f"{server.host}/att/plain:1"
    plain = build(sub_user, work, "-t", plain_ref, "--push", "--provenance=false",
                  "--sbom=false", "--build-arg", "GREETING=hello", ctx)
    bare = work / "bare"
    bare.mkdir()
    (bare / "Dockerfile").write_text(f"FROM {base_ref}\n")
    give_to(bare, sub_user)
    build(sub_user, work, "--sbom=true", "-o", f"type=oci,dest={work / 'bare.oci'}", bare)
    return {"server": server, "ref": ref, "log": proc.stderr, "dockerfile": dockerfile,
            "meta": json.loads((work / "meta.json").read_text()), "plain_ref": plain_ref,
            "plain_log": plain.stderr, "base": images.base.digest,
            "bare_sbom": _layout_statements(work / "bare.oci")}


def _layout_statements(path: Path) -> list[dict[str, Any]]:
    """The statements of the one attested image in an OCI layout directory."""
    def blob(digest: str) -> dict[str, Any]:
        return json.loads((path / "blobs" / "sha256" / digest[7:]).read_bytes())

    index = blob(json.loads((path / "index.json").read_text())["manifests"][0]["digest"])
    manifest = blob(index["manifests"][1]["digest"])
    return [blob(layer["digest"]) for layer in manifest["layers"]]


def _statements(attested: dict[str, Any]) -> tuple[dict, dict, dict[str, dict]]:
    server = attested["server"]
    index = _inspect_raw(server, attested["ref"])
    image, attestation = index["manifests"]
    manifest = _inspect_raw(server, f"{server.host}/att/app@{attestation['digest']}")
    found = {}
    for layer in manifest["layers"]:
        stmt = json.loads(_blob(server, "att/app", layer["digest"]))
        assert layer["annotations"] == {"in-toto.io/predicate-type": stmt["predicateType"]}
        found[stmt["predicateType"]] = stmt
    return index, manifest, found


def test_the_pushed_tag_is_an_index_of_the_image_and_its_attestations(attested) -> None:
    index, manifest, statements = _statements(attested)
    image, attestation = index["manifests"]
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert image["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert image["digest"] == image_digest(attested["log"])
    assert image["platform"]["os"] == "linux"
    assert attestation["platform"] == {"architecture": "unknown", "os": "unknown"}
    assert attestation["annotations"] == {**ANNOTATIONS,
                                          "vnd.docker.reference.digest": image["digest"]}
    assert manifest["artifactType"] == "application/vnd.docker.attestation.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert manifest["subject"]["digest"] == image["digest"]
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.in-toto+json"] * 2
    assert list(statements) == ["https://spdx.dev/Document", "https://slsa.dev/provenance/v1"]
    index_digest = "sha256:" + hashlib.sha256(subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{attested['ref']}"],
        check=True, capture_output=True, timeout=60).stdout).hexdigest()
    assert attested["meta"]["containerimage.digest"] == index_digest
    assert f"pushed {attested['ref']}@{index_digest}" in attested["log"]
    for stmt in statements.values():
        validate_statement(stmt)
        assert stmt["subject"] == [{"name": f"pkg:docker/{attested['server'].host}/att/app@1"
                                            "?platform=linux%2Famd64",
                                    "digest": {"sha256": image["digest"][7:]}}]


def test_the_provenance_names_what_the_build_read(attested) -> None:
    _, _, statements = _statements(attested)
    predicate = statements["https://slsa.dev/provenance/v1"]["predicate"]
    definition = predicate["buildDefinition"]
    assert definition["buildType"].startswith("https://github.com/moby/buildkit/")
    request = definition["externalParameters"]["request"]
    assert request["frontend"] == "dockerfile.v0"
    assert request["args"] == {"build-arg:GREETING": "hello"}
    dockerfile_sha = hashlib.sha256(attested["dockerfile"]).hexdigest()
    assert definition["externalParameters"]["configSource"] == {
        "path": "Dockerfile", "digest": {"sha256": dockerfile_sha}}
    deps = definition["resolvedDependencies"]
    assert deps[0] == {"uri": f"pkg:docker/{attested['server'].host}/att/busybox@1"
                              "?platform=linux%2Famd64",
                       "digest": {"sha256": attested["base"][7:]}}
    assert {"name": "dockerfile", "digest": {"sha256": dockerfile_sha}} in deps
    assert [d["name"] for d in deps[1:]] == ["context", "dockerfile"]
    metadata = predicate["runDetails"]["metadata"]
    assert metadata["startedOn"] <= metadata["finishedOn"]
    assert len(metadata["invocationId"]) == 25
    assert metadata["buildkit_completeness"] == {"request": True,
                                                 "resolvedDependencies": False}


def test_the_sbom_lists_the_images_packages(attested) -> None:
    _, _, statements = _statements(attested)
    doc = statements["https://spdx.dev/Document"]["predicate"]
    validate_spdx(doc)
    versions = {p["name"]: p.get("versionInfo") for p in doc["packages"]}
    assert versions == {f"{attested['server'].host}/att/app:1": None,
                        "base-files": "12.4+deb12u5", "zlib1g": "1:1.2.13.dfsg-1",
                        "tzdata": "2024a-0+deb12u1", "musl": "1.2.4-r2", "zlib": "1.3.1-r0",
                        "six": "1.16.0"}


def test_an_image_without_package_databases_gets_an_sbom_of_itself(attested) -> None:
    [stmt] = attested["bare_sbom"]  # --sbom alone: no provenance
    validate_statement(stmt)
    validate_spdx(stmt["predicate"])
    assert [p["name"] for p in stmt["predicate"]["packages"]] == ["image"]


def test_without_attestations_the_same_image_is_a_plain_manifest(attested) -> None:
    server = attested["server"]
    plain = _inspect_raw(server, attested["plain_ref"])
    assert plain["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    index = _inspect_raw(server, attested["ref"])
    # the attestations change nothing in the image itself
    assert image_digest(attested["plain_log"]) == index["manifests"][0]["digest"]
