"""The attestation flags CI scripts pass to `docker buildx build`: turning them off is
accepted and changes nothing; a value that is not one buildx takes is refused before
anything is built; so is a --platform that names none. (What the
attestations hold: tests/registry/test_attestations.py.)"""

from __future__ import annotations

import pytest

from tests.build.conftest import Builder, image_digest, write_context

DOCKERFILE = "FROM busybox:latest\nRUN echo attested > /a.txt\n"


@pytest.fixture
def context(builder: Builder):
    return write_context(builder.tmp / "ctx", {"Dockerfile": DOCKERFILE}, builder.user)


def test_disabled_attestations_build_the_same_image(builder: Builder, context) -> None:
    plain, _ = builder.build(context)
    off, _ = builder.build("--provenance=false", "--sbom=0",
                           "--attest", "type=provenance,disabled=true",
                           "--attest", "type=sbom,disabled=true", context)
    assert image_digest(off.stderr) == image_digest(plain.stderr)


@pytest.mark.parametrize(("flags", "message"), [
    (["--provenance", "mode=full-ish"], "--provenance: mode='full-ish' is not min or max"),
    (["--attest", "type=provenance,colour=red"],
     "--attest type=provenance,colour=red: unknown attribute 'colour' for provenance"),
    (["--sbom", "oops"], "'oops' is not key=value"),
    (["--attest", "type=signature"], "--attest type=signature: unknown type 'signature'"),
    (["--attest", "type=sbom,disabled=maybe"], "disabled='maybe' is not true or false"),
    (["--platform", "linux"], "--platform: invalid platform 'linux'"),
])
def test_what_is_not_supported_is_refused_before_building(builder: Builder, context,
                                                          flags: list[str], message: str) -> None:
    proc, _ = builder.build(*flags, context, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "RUN echo" not in proc.stderr  # refused before any step
