"""Image references: Docker Hub normalization, local and IP registries, clear errors."""

from __future__ import annotations

import pytest

from ocibuild.reference import InvalidReferenceError, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, registry, repository, tag, digest, api", [
    ("alpine", "docker.io", "library/alpine", "latest", "", "registry-1.docker.io"),
    ("alpine:3.19", "docker.io", "library/alpine", "3.19", "", "registry-1.docker.io"),
    ("library/alpine", "docker.io", "library/alpine", "latest", "", "registry-1.docker.io"),
    ("user/app:v1", "docker.io", "user/app", "v1", "", "registry-1.docker.io"),
    ("docker.io/alpine", "docker.io", "library/alpine", "latest", "", "registry-1.docker.io"),
    ("index.docker.io/user/app", "docker.io", "user/app", "latest", "",
     "registry-1.docker.io"),
    ("localhost/app", "localhost", "app", "latest", "", "localhost"),
    ("localhost:5000/team/app:1.0", "localhost:5000", "team/app", "1.0", "", "localhost:5000"),
    ("127.0.0.1:5000/app", "127.0.0.1:5000", "app", "latest", "", "127.0.0.1:5000"),
    ("[::1]:5000/app:x", "[::1]:5000", "app", "x", "", "[::1]:5000"),
    ("ghcr.io/o/r/deep/name:t", "ghcr.io", "o/r/deep/name", "t", "", "ghcr.io"),
    (f"alpine@{DIGEST}", "docker.io", "library/alpine", "", DIGEST, "registry-1.docker.io"),
    (f"quay.io/a/b:t@{DIGEST}", "quay.io", "a/b", "t", DIGEST, "quay.io"),
    ("my-reg.example:443/a__b/c-d.e:T_1", "my-reg.example:443", "a__b/c-d.e", "T_1", "",
     "my-reg.example:443"),
])
def test_parse_and_normalize(text: str, registry: str, repository: str, tag: str,
                             digest: str, api: str) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == \
        (registry, repository, tag, digest)
    assert ref.api_host == api
    assert parse_reference(str(ref)) == ref


def test_familiar_form_and_loopback() -> None:
    assert parse_reference("alpine:3").familiar() == "alpine:3"
    assert str(parse_reference("alpine")) == "docker.io/library/alpine:latest"
    assert parse_reference("127.0.0.1:1/a").is_loopback
    assert parse_reference("localhost:1/a").is_loopback
    assert not parse_reference("10.0.0.1:1/a").is_loopback


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("Alpine", "lowercase"),
    ("alpine:", "bad tag"),
    ("alpine:-x", "bad tag"),
    ("alpine@sha256:1234", "digest"),
    ("a//b", "path component"),
    ("https://ghcr.io/a/b", "no scheme"),
    ("ghcr.io:99999/a", "port"),
    ("x" * 300, "longer than"),
    ("localhost:5000/", "no repository"),
])
def test_invalid_references_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(InvalidReferenceError) as err:
        parse_reference(text)
    assert fragment in err.value.message
