"""Image annotations from `-o annotation[-TYPE][[PLATFORM]].KEY=V` and from
`--annotation [TYPE[[PLATFORM]]:]KEY=V`, with BuildKit's four places for them.

For a single-platform image: `manifest` annotations go in the image manifest,
`manifest-descriptor` ones on the descriptor that names the manifest (an OCI layout's
index.json entry); `index` and `index-descriptor` need an image index, so, as in
BuildKit, asking for them is an error. A multi-platform build places all four
(`exporter/platforms.py`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from ocibuild.deferred import deferred_dataclass
from ocibuild.errors import UsageError
from ocibuild.oci.platform import Platform

MANIFEST = "manifest"
MANIFEST_DESCRIPTOR = "manifest-descriptor"
INDEX = "index"
INDEX_DESCRIPTOR = "index-descriptor"
TYPES = (MANIFEST, MANIFEST_DESCRIPTOR, INDEX, INDEX_DESCRIPTOR)


@functools.cache
def _output_key_prefix() -> re.Pattern[str]:
    return re.compile(r"^annotation[-.\[]")


@functools.cache
def _output_key() -> re.Pattern[str]:
    return re.compile(r"^annotation(?:-([a-z-]+))?(?:\[([A-Za-z0-9_/-]+)\])?\.(\S+)$")


@functools.cache
def _flag_type() -> re.Pattern[str]:
    return re.compile(r"^([a-z-]+)(?:\[([A-Za-z0-9_/-]+)\])?$")


@deferred_dataclass(frozen=True)
class Annotation:
    """One --annotation value: where it goes (manifest, index, descriptor...), and its key and
    value."""
    type: str  # one of TYPES
    platform: Platform | None  # only for the image of this platform
    key: str
    value: str


def is_output_key(key: str) -> bool:
    """Whether an -o key is an annotation key (well formed or not)."""
    return bool(_output_key_prefix().match(key))


def parse_output_key(key: str, value: str, where: str) -> Annotation:
    """An -o key such as `annotation.K`, `annotation-index.K`,
    `annotation-manifest[linux/amd64].K`."""
    m = _output_key().match(key)
    if m is None:
        raise UsageError(f"{where}: cannot parse the annotation key {key!r} (use "
                         "annotation[-TYPE][[OS/ARCH]].KEY=VALUE)")
    return _annotation(m.group(1) or MANIFEST, m.group(2), m.group(3), value, where)


def parse_flag(text: str) -> tuple[Annotation, ...]:
    """A `--annotation` value, as buildx reads it: `KEY=V` (a manifest annotation),
    `TYPE:KEY=V`, `TYPE[OS/ARCH]:KEY=V`, or several types: `manifest,index:KEY=V`."""
    where = f"--annotation {text}"
    key, sep, value = text.partition("=")
    if not sep:
        raise UsageError(f"{where}: expected KEY=VALUE")
    types, colon, name = key.partition(":")
    if not colon:
        return (Annotation(MANIFEST, None, key, value),)
    found = []
    for part in types.split(","):
        m = _flag_type().match(part)
        if m is None:
            raise UsageError(f"{where}: {part!r} is not TYPE or TYPE[OS/ARCH] "
                             f"(TYPE: {', '.join(TYPES)})")
        found.append(_annotation(m.group(1), m.group(2), name, value, where))
    return tuple(found)


def _annotation(kind: str, platform: str | None, key: str, value: str,
                where: str) -> Annotation:
    if kind not in TYPES:
        raise UsageError(f"{where}: unknown annotation type {kind!r} "
                         f"(use one of {', '.join(TYPES)})")
    parsed = None
    if platform:
        try:
            parsed = Platform.parse(platform)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
    return Annotation(kind, parsed, key, value)


def for_image(annotations: Iterable[Annotation], platform: Platform, oci_types: bool,
              where: str) -> tuple[dict[str, str], dict[str, str]]:
    """(manifest annotations, manifest-descriptor annotations) of a single-platform image
    of `platform`; an annotation for another platform or for an index is an error."""
    manifest: dict[str, str] = {}
    descriptor: dict[str, str] = {}
    for a in annotations:
        if a.platform is not None and not _same_platform(a.platform, platform):
            raise UsageError(f"{where}: annotation {a.key!r} is for platform {a.platform}, "
                             f"but the image is for {platform}")
        if a.type in (INDEX, INDEX_DESCRIPTOR):
            raise UsageError(f"{where}: {a.type} annotation {a.key!r}: index annotations need "
                             "a multi-platform image; a single-platform build has no index")
        if not oci_types and a.type != MANIFEST:
            raise UsageError(f"{where}: {a.type} annotation {a.key!r} cannot be written "
                             "with oci-mediatypes=false")
        (manifest if a.type == MANIFEST else descriptor)[a.key] = a.value
    return manifest, descriptor


def _same_platform(asked: Platform, image: Platform) -> bool:
    return asked.matches(image) and image.matches(asked)
