"""Short options with their value attached read as Docker's command line reads them."""

from __future__ import annotations

import pytest

from tests.build.conftest import Builder, write_context


@pytest.mark.parametrize("given", ["-t=short:equals", "-tshort:equals"])
def test_a_short_option_takes_its_attached_value(builder: Builder, given: str) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": "FROM busybox:latest\n"},
                        builder.user)
    proc, _ = builder.build(given, ctx)
    assert "(docker.io/library/short:equals)" in proc.stderr, proc.stderr
