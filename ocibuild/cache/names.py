"""Local image names, normalized as docker does (busybox -> docker.io/library/busybox:latest).

Names are stored in their full form so that `busybox`, `library/busybox` and
`docker.io/library/busybox:latest` all name the same image; people see the short
("familiar") form: `busybox:latest`. The parsing is the registry reference parser's
(ocibuild.reference, a light module), so a name means the same image here as
in a registry.
"""

from __future__ import annotations

from ocibuild.reference import DEFAULT_TAG, OFFICIAL_PREFIX, InvalidReferenceError
from ocibuild.reference import DOCKER_HUB as DEFAULT_DOMAIN
from ocibuild.reference import familiar as _familiar
from ocibuild.reference import parse_reference as _parse_reference

__all__ = ["DEFAULT_DOMAIN", "DEFAULT_TAG", "OFFICIAL_PREFIX", "familiar_name",
           "normalize_name", "split_repository_tag"]


def normalize_name(name: str) -> str:
    """The full form of an image name: DOMAIN/PATH:TAG, DOMAIN/PATH@DIGEST or
    DOMAIN/PATH:TAG@DIGEST. Surrounding spaces are ignored.

    Raises InvalidReferenceError (a UsageError) for names docker would reject.
    """
    text = name.strip()
    if not text:
        raise InvalidReferenceError("empty image name", reason="empty")
    try:
        return str(_parse_reference(text))
    except InvalidReferenceError as exc:
        raise InvalidReferenceError(f"invalid image name {name!r}: {exc.reason}",
                                    reason=exc.reason) from None


def familiar_name(full: str) -> str:
    """The short form people type and read: docker.io/library/busybox:latest -> busybox:latest."""
    return _familiar(full)


def split_repository_tag(full: str) -> tuple[str, str]:
    """(repository, tag) of a normalized name for listings; tag is '<none>' for digest names."""
    name = full.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return familiar_name(name[:colon]), name[colon + 1:]
    return familiar_name(name), "<none>"
