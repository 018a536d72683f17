"""Content digests (sha256) and streaming helpers that compute them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import BinaryIO, Protocol

from ocibuild.errors import DigestMismatchError

try:
    from _sha256 import sha256 as _builtin_sha256
except ImportError:  # pragma: no cover (an interpreter built without it)
    _builtin_sha256 = None

ALGORITHM = "sha256"
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
CHUNK = 1 << 20
# Up to this many bytes the interpreter's own sha256 hashes them. OpenSSL's (hashlib) is
# ~6x faster on large data, but loading libcrypto costs ~2 ms, and a build's main
# process, on the way to its first step and at its export, hashes only small things
# (op specs, cache keys, configs, manifests). Bounded so, the built-in one (~3.2 ns a
# byte against 0.6) costs at most ~40 us more for a hash where OpenSSL is loaded anyway.
SMALL = 16 << 10


class Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...


def new_hash(size: int | None = None) -> Hash:
    """A sha256 hash object for `size` bytes (None: any number, maybe large)."""
    if size is not None and size <= SMALL and _builtin_sha256 is not None:
        return _builtin_sha256()
    import hashlib

    return hashlib.sha256()


def hex_of_bytes(data: bytes) -> str:
    """The sha256 of `data` in hex (without the algorithm)."""
    h = new_hash(len(data))
    h.update(data)
    return h.hexdigest()


def is_digest(value: str) -> bool:
    return bool(_DIGEST_RE.match(value))


def validate(value: str) -> str:
    if not is_digest(value):
        raise ValueError(f"not a sha256 digest: {value!r}")
    return value


def hex_of(digest: str) -> str:
    """The hex part of 'sha256:HEX'."""
    return validate(digest).split(":", 1)[1]


def of_bytes(data: bytes) -> str:
    return f"{ALGORITHM}:{hex_of_bytes(data)}"


def chain_id(diff_ids: Sequence[str]) -> str:
    """The OCI image-spec ChainID of a stack of layers (bottom first)."""
    chain = ""
    for diff_id in diff_ids:
        chain = diff_id if not chain else of_bytes(f"{chain} {diff_id}".encode())
    return chain


def of_stream(src: BinaryIO) -> tuple[str, int]:
    """Digest and size of everything left in a stream, read in bounded chunks."""
    h = new_hash()
    size = 0
    while chunk := src.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return f"{ALGORITHM}:{h.hexdigest()}", size


class HashingWriter:
    """A write-only file object that hashes and counts what passes through it.

    `target` may be None to only hash (e.g. to compute a diffID without storing);
    `size`, when known, is how many bytes will pass.
    """

    def __init__(self, target: BinaryIO | None = None, size: int | None = None) -> None:
        self._target = target
        self._hash = new_hash(size)
        self.size = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._hash.update(data)
        self.size += len(data)
        if self._target is not None:
            self._target.write(data)
        return len(data)

    def flush(self) -> None:
        if self._target is not None:
            self._target.flush()

    def writable(self) -> bool:
        return True

    @property
    def digest(self) -> str:
        return f"{ALGORITHM}:{self._hash.hexdigest()}"

    def hashed_so_far(self) -> tuple[str, int]:
        """(digest, size) of everything written until now."""
        return self.digest, self.size


class VerifyingReader:
    """Wraps a readable stream; at EOF checks size and digest, raising on mismatch."""

    def __init__(self, src: BinaryIO, digest: str, size: int | None = None, what: str = "") -> None:
        self._src = src
        self._expected = validate(digest)
        self._size = size
        self._what = what or digest
        self._hash = new_hash(size)
        self.read_bytes = 0
        self._checked = False

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        if data:
            self._hash.update(data)
            self.read_bytes += len(data)
            if self._size is not None and self.read_bytes > self._size:
                raise DigestMismatchError(
                    f"{self._what}: more than the expected {self._size} bytes"
                )
        elif not self._checked:
            self.verify()
        return data

    def readable(self) -> bool:
        return True

    def verify(self) -> None:
        self._checked = True
        actual = f"{ALGORITHM}:{self._hash.hexdigest()}"
        if self._size is not None and self.read_bytes != self._size:
            raise DigestMismatchError(
                f"{self._what}: got {self.read_bytes} bytes, expected {self._size}"
            )
        if actual != self._expected:
            raise DigestMismatchError(f"{self._what}: content has digest {actual}")
