"""`oci:PATH[:TAG|@DIGEST]` references to images in a layout (as skopeo writes them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocibuild.errors import UsageError
from ocibuild.oci import digest as _digest

PREFIX = "oci:"


@dataclass(frozen=True)
class LayoutRef:
    """An image in an OCI layout directory: the directory, and the tag or digest."""
    path: Path
    ref: str | None  # a tag, a digest, or None for "the only image"

    def __str__(self) -> str:
        if self.ref is None:
            return f"{PREFIX}{self.path}"
        sep = "@" if _digest.is_digest(self.ref) else ":"
        return f"{PREFIX}{self.path}{sep}{self.ref}"


def is_layout_ref(text: str) -> bool:
    return text.startswith(PREFIX)


def parse(text: str) -> LayoutRef:
    if not is_layout_ref(text):
        raise UsageError(f"{text!r}: expected oci:PATH[:TAG] or oci:PATH@DIGEST")
    body = text[len(PREFIX):]
    if not body:
        raise UsageError(f"{text!r}: missing layout path after 'oci:'")
    if "@" in body:
        path, _, dgst = body.rpartition("@")
        if not _digest.is_digest(dgst):
            raise UsageError(f"{text!r}: {dgst!r} is not a sha256 digest")
        return LayoutRef(Path(path), dgst)
    # A tag follows the last ':' after the last '/': "oci:/a/b:latest" -> tag "latest".
    slash = body.rfind("/")
    colon = body.rfind(":")
    if colon > slash:
        path, tag = body[:colon], body[colon + 1:]
        if not tag:
            raise UsageError(f"{text!r}: empty tag")
        return LayoutRef(Path(path), tag)
    return LayoutRef(Path(body), None)
