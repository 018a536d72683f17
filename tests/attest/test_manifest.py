"""The attestation manifests and the index, for several platforms as a multi-platform
build will pass them: the images first in the order given, then one attestation
manifest per image pointing at it (annotations, subject), each statement a layer
annotated with its predicate type. Index and manifests validate against the OCI
image-spec schemas."""

from __future__ import annotations

import json
from pathlib import Path

from ocibuild.attest import Predicate, statements_for
from ocibuild.attest.manifest import index_with_attestations
from ocibuild.oci.config import ImageConfig
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.image import write_image
from ocibuild.oci.layout import ImageLayout
from tests.attest.schema_check import validate_statement
from tests.support.schemas import validate

PREDICATES = [Predicate("https://spdx.dev/Document", {"spdxVersion": "SPDX-2.3"}),
              Predicate("https://slsa.dev/provenance/v1", {"buildDefinition": {}})]


def _image(layout: ImageLayout, arch: str) -> Descriptor:
    config = ImageConfig(architecture=arch, os="linux")
    return write_image(layout, config, [])


def test_each_platforms_image_gets_its_own_attestation_manifest(tmp_path: Path) -> None:
    layout = ImageLayout.init(tmp_path / "layout")
    images = [_image(layout, "amd64"), _image(layout, "arm64")]
    pairs = [(image, statements_for(PREDICATES, image.digest, ["example.org/app:1"],
                                    str(image.platform))) for image in images]
    index_desc = index_with_attestations(layout, pairs)

    index = json.loads(layout.read_blob(index_desc.digest))
    validate("index", index)
    entries = index["manifests"]
    assert [e["digest"] for e in entries[:2]] == [i.digest for i in images]
    assert [e["platform"] for e in entries] == [
        {"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux"},
        {"architecture": "unknown", "os": "unknown"}, {"architecture": "unknown",
                                                       "os": "unknown"}]
    for image, entry in zip(images, entries[2:], strict=True):
        assert entry["annotations"] == {"vnd.docker.reference.type": "attestation-manifest",
                                        "vnd.docker.reference.digest": image.digest}
        manifest = json.loads(layout.read_blob(entry["digest"]))
        validate("manifest", manifest)
        assert manifest["subject"] == {"mediaType": image.media_type, "digest": image.digest,
                                       "size": image.size}
        assert layout.read_blob(manifest["config"]["digest"]) == b"{}"
        for predicate, layer in zip(PREDICATES, manifest["layers"], strict=True):
            statement = json.loads(layout.read_blob(layer["digest"]))
            validate_statement(statement)
            assert layer["annotations"] == {
                "in-toto.io/predicate-type": predicate.predicate_type}
            arch = image.platform.architecture if image.platform else ""
            assert statement["subject"] == [{
                "name": f"pkg:docker/example.org/app@1?platform=linux%2F{arch}",
                "digest": {"sha256": image.digest.removeprefix("sha256:")}}]
