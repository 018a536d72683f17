"""ocibuild.oci.digest: the same sha256 whichever implementation makes it (the
interpreter's own for small inputs, OpenSSL's for large or unknown sizes)."""

from __future__ import annotations

import io
import subprocess

import pytest

from ocibuild.oci import digest


@pytest.mark.parametrize("size", [0, 1, digest.SMALL, digest.SMALL + 1, 3 * digest.SMALL])
def test_every_path_gives_the_digest_sha256sum_gives(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    expected = subprocess.run(["sha256sum"], input=data, capture_output=True,
                              check=True).stdout.split()[0].decode()
    assert digest.of_bytes(data) == f"sha256:{expected}"
    assert digest.of_stream(io.BytesIO(data)) == (f"sha256:{expected}", size)
    for hint in (None, size):
        writer = digest.HashingWriter(None, hint)
        writer.write(data[: size // 2])
        writer.write(data[size // 2:])
        assert writer.digest == f"sha256:{expected}"
        reader = digest.VerifyingReader(io.BytesIO(data), f"sha256:{expected}", hint)
        while reader.read(1000):
            pass
