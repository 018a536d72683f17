"""Local image names and registry references are one normalization: a name means the
same image in the store as in a registry, and both refuse the same names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ocibuild.cache.names import familiar_name, normalize_name, split_repository_tag
from ocibuild.errors import UsageError
from ocibuild.reference import InvalidReferenceError, parse_reference

DIGEST = "sha256:" + "0123456789abcdef" * 4

# typed name -> (full form, familiar form)
NAMES = [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1", "busybox:1"),
    ("user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
    ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/team/app:1.0", "localhost:5000/team/app:1.0",
     "localhost:5000/team/app:1.0"),
    ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest", "127.0.0.1:5000/app:latest"),
    ("[::1]:5000/app:x", "[::1]:5000/app:x", "[::1]:5000/app:x"),
    ("ghcr.io/o/r/deep/name:T_1", "ghcr.io/o/r/deep/name:T_1", "ghcr.io/o/r/deep/name:T_1"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}"),
    (f"quay.io/a/b:t@{DIGEST}", f"quay.io/a/b:t@{DIGEST}", f"quay.io/a/b:t@{DIGEST}"),
]

REFUSED = [
    ("Busybox", "lowercase"),
    ("docker.io/Library/busybox", "lowercase"),
    ("MyOrg/app", "lowercase"),  # docker would take MyOrg for a registry host
    ("Busy Box", "bad path component"),
    ("busybox:", "bad tag"),
    ("busybox:-x", "bad tag"),
    ("busybox:t\u00e9", "bad tag"),  # tags are ASCII
    ("busybox@sha256:1234", "digest"),
    (f"busybox@{DIGEST.upper()}", "digest"),
    ("a//b", "bad path component"),
    ("https://ghcr.io/a/b", "no scheme"),
    ("ghcr.io:99999/a", "bad port"),
    ("team/-app", "bad path component"),
    ("x" * 300, "longer than"),
    ("localhost:5000/", "no repository"),
]


@pytest.mark.parametrize("typed, full, familiar", NAMES)
def test_the_store_and_the_registry_normalize_names_alike(typed: str, full: str,
                                                          familiar: str) -> None:
    ref = parse_reference(typed)
    assert normalize_name(typed) == str(ref) == full
    assert familiar_name(full) == ref.familiar() == familiar
    assert normalize_name(full) == full  # the full form is a fixed point


@pytest.mark.parametrize("typed, reason", REFUSED)
def test_the_store_and_the_registry_refuse_the_same_names(typed: str, reason: str) -> None:
    with pytest.raises(InvalidReferenceError) as as_reference:
        parse_reference(typed)
    with pytest.raises(UsageError) as as_name:
        normalize_name(typed)
    assert reason in as_reference.value.message
    assert as_name.value.message == f"invalid image name {typed!r}: {as_reference.value.reason}"


def test_a_local_name_may_have_surrounding_spaces_and_not_be_empty() -> None:
    assert normalize_name("  busybox:1 \n") == "docker.io/library/busybox:1"
    with pytest.raises(UsageError, match="empty image name"):
        normalize_name("   ")


def test_listings_split_repository_and_tag() -> None:
    assert split_repository_tag("docker.io/library/busybox:1.36") == ("busybox", "1.36")
    assert split_repository_tag("localhost:5000/app:v1") == ("localhost:5000/app", "v1")
    assert split_repository_tag(f"docker.io/user/app@{DIGEST}") == ("user/app", "<none>")
    assert split_repository_tag(f"quay.io/a/b:t@{DIGEST}") == ("quay.io/a/b", "t")


def test_the_store_names_do_not_load_the_registry_client() -> None:
    code = ("import sys, ocibuild.cache\n"
            "ocibuild.cache.normalize_name('busybox')\n"
            "print(sorted(m for m in ('ssl', 'http.client', "
            "'ocibuild.registry.client') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert out == "[]"
