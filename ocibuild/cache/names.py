"""Local image names, normalized as docker does (busybox -> docker.io/library/busybox:latest).

Names are stored in their full form so that `busybox`, `library/busybox` and
`docker.io/library/busybox:latest` all name the same image; people see the short
("familiar") form: `busybox:latest`.
"""

from __future__ import annotations

import re

from ocibuild.errors import UsageError
from ocibuild.oci import digest as _digest

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DOMAIN = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"
                     r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$")


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return first, rest
    return DEFAULT_DOMAIN, name


def normalize_name(name: str) -> str:
    """The full form of an image name: DOMAIN/PATH:TAG or DOMAIN/PATH@DIGEST.

    Raises UsageError for names docker would reject.
    """
    text = name.strip()
    if not text:
        raise UsageError("empty image name")
    digest = ""
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _digest.is_digest(digest):
            raise UsageError(f"invalid image name {name!r}: bad digest {digest!r}")
    tag = ""
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1:]
        if not _TAG.match(tag):
            raise UsageError(f"invalid image name {name!r}: bad tag {tag!r}")
    domain, path = _split_domain(text)
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if not _DOMAIN.match(domain):
        raise UsageError(f"invalid image name {name!r}: bad registry {domain!r}")
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if not path or not all(_COMPONENT.match(c) for c in path.split("/")):
        raise UsageError(
            f"invalid image name {name!r}: repository names are lower-case letters, digits "
            "and separators (. _ __ -) in /-separated parts"
        )
    full = f"{domain}/{path}"
    if tag or not digest:
        full += f":{tag or DEFAULT_TAG}"
    if digest:
        full += f"@{digest}"
    return full


def familiar_name(full: str) -> str:
    """The short form people type and read: docker.io/library/busybox:latest -> busybox:latest."""
    official = f"{DEFAULT_DOMAIN}/{OFFICIAL_PREFIX}"
    if full.startswith(official) and "/" not in full[len(official):]:
        return full[len(official):]
    if full.startswith(DEFAULT_DOMAIN + "/"):
        return full[len(DEFAULT_DOMAIN) + 1:]
    return full


def split_repository_tag(full: str) -> tuple[str, str]:
    """(repository, tag) of a normalized name for listings; tag is '<none>' for digest names."""
    name = full.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return familiar_name(name[:colon]), name[colon + 1:]
    return familiar_name(name), "<none>"
