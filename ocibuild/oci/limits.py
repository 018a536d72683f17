"""How large a JSON document read whole into memory may be, per kind.

Manifests, indexes and configs are parsed in memory; everything else is streamed. A
registry, a layout or an archive that names a larger one is broken or hostile, so it
is refused from its declared size before any byte is read, and a read stops one byte
past the cap. The caps follow the registries and clients images move between: 4 MiB
for manifests (distribution's own limit; containerd's is 4 MiB too), image configs 4×
what containers/image accepts (4 MiB), cache configs as large as a `mode=max` cache
of a big build gets.
"""

from __future__ import annotations

from collections import namedtuple

from ocibuild.errors import OcibuildError, printable

TYPE_CHECKING = False  # typing (and dataclasses) would cost every registry command ~3 ms
if TYPE_CHECKING:
    from typing import BinaryIO, Protocol

    class _Blobs(Protocol):
        def open_blob(self, digest: str, size: int | None = None) -> BinaryIO: ...

# kind: what the document is, for messages; kinds: the plural; cap: bytes
JsonLimit = namedtuple("JsonLimit", ("kind", "kinds", "cap"))


MANIFEST = JsonLimit("manifest", "manifests and indexes", 4 << 20)
IMAGE_CONFIG = JsonLimit("image config", "image configs", 16 << 20)
CACHE_CONFIG = JsonLimit("cache config", "cache configs", 64 << 20)
ARCHIVE_MANIFEST = JsonLimit("manifest.json", "docker archive manifests", 4 << 20)
# a layout's index.json lists its tags: the store's holds every image name it has
LAYOUT_INDEX = JsonLimit("index.json", "layout indexes", 64 << 20)


class TooLargeError(OcibuildError):
    """A JSON document over its cap."""


def _mib(n: int) -> str:
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n / (1 << 20):.1f} MiB"


def refuse_oversized(limit: JsonLimit, size: int, where: str, name: str = "", *,
                     at_least: bool = False) -> None:
    """A TooLargeError if `size` is over the cap (`at_least`: the reader stopped there)."""
    if size <= limit.cap:
        return
    what = f"{limit.kind} {name}".rstrip()
    amount = f"larger than {_mib(limit.cap)}" if at_least else \
        f"{_mib(size)}, over the {_mib(limit.cap)} limit"
    raise TooLargeError(printable(
        f"{where}: {what} is {amount} for {limit.kinds}; refused "
        "(a source serving one this large is broken or hostile)"))


def read_capped(stream: BinaryIO, limit: JsonLimit, where: str, name: str = "") -> bytes:
    """All of `stream`, refused as soon as it passes the cap."""
    data = stream.read(limit.cap + 1)
    refuse_oversized(limit, len(data), where, name, at_least=True)
    return data


def read_blob(blobs: _Blobs, digest: str, limit: JsonLimit, where: str,
              size: int | None = None) -> bytes:
    """A blob of a layout, verified against its digest (and `size`), within the cap."""
    if size is not None:
        refuse_oversized(limit, size, where, digest)
    reader = blobs.open_blob(digest, size)
    try:
        data = read_capped(reader, limit, where, digest)
        reader.read()  # at the end: the digest is checked
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()
    return data
