"""The keys each `-o type=...` accepts, and what the image keys ask for (ImageOptions).

Values are read as BuildKit reads them: booleans as Go's strconv.ParseBool, an empty
`force-compression=` or `tar=` as true. Unlike buildx, an unknown key is an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ocibuild.errors import UsageError
from ocibuild.exporter import annotation_keys as ann
from ocibuild.oci.mediatypes import GZIP, UNCOMPRESSED, ZSTD

# keys of every output that writes an image manifest
IMAGE_KEYS = ("name", "compression", "compression-level", "force-compression",
              "oci-mediatypes", "annotation.KEY", "annotation-manifest.KEY",
              "annotation-manifest-descriptor.KEY", "annotation-index.KEY",
              "annotation-index-descriptor.KEY")
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "store": ("push", *IMAGE_KEYS),
    "image": ("push", *IMAGE_KEYS),
    "oci": ("dest", "tar", *IMAGE_KEYS),
    "docker": ("dest", "name", "tar"),
    "local": ("dest",),
}
_PLAIN_KEYS = {kind: frozenset(k for k in keys if not k.endswith(".KEY"))
               for kind, keys in KNOWN_KEYS.items()}

COMPRESSION_NAMES = {"gzip": GZIP, "zstd": ZSTD, "uncompressed": UNCOMPRESSED}
LEVELS = {GZIP: (0, 9), ZSTD: (0, 22)}

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(value: str, key: str, where: str, empty: bool | None = None) -> bool:
    if value == "" and empty is not None:
        return empty
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UsageError(f"{where}: {key}={value!r} is not a boolean (use true or false)")


@dataclass(frozen=True)
class ImageOptions:
    """How one output writes the image: layer compression, media types, annotations."""

    compression: str | None = None  # gzip | zstd | none; None: the build's default
    level: int | None = None  # None: the compressor's default level
    force: bool = False  # convert base-image layers too
    oci_types: bool = True
    annotations: tuple[ann.Annotation, ...] = ()

    def with_annotations(self, extra: Iterable[ann.Annotation]) -> ImageOptions:
        """These options with `extra` (e.g. from --annotation) under the own ones: an
        annotation the output names itself wins."""
        own = {(a.type, a.platform, a.key) for a in self.annotations}
        added = tuple(a for a in extra if (a.type, a.platform, a.key) not in own)
        return ImageOptions(self.compression, self.level, self.force, self.oci_types,
                            added + self.annotations)


def check_keys(kind: str, attrs: dict[str, str], where: str) -> None:
    """Refuse a key `kind` does not know, naming the ones it does."""
    plain = _PLAIN_KEYS[kind]
    takes_annotations = "annotation.KEY" in KNOWN_KEYS[kind]
    for key in attrs:
        if key in plain or (takes_annotations and ann.is_output_key(key)):
            continue
        if kind == "docker" and (key in _PLAIN_KEYS["oci"] or ann.is_output_key(key)):
            raise UsageError(f"{where}: type=docker writes a docker-archive (uncompressed "
                             f"layers, no image manifest), so {key!r} cannot apply to it; "
                             "use type=oci for it")
        raise UsageError(f"{where}: unknown key {key!r} for type={kind} "
                         f"(known: {', '.join(KNOWN_KEYS[kind])})")


def wants_tar(attrs: dict[str, str], where: str) -> bool | None:
    """tar= as given (an empty value is true); None when not given."""
    if "tar" not in attrs:
        return None
    return parse_bool(attrs["tar"], "tar", where, empty=True)


def wants_push(attrs: dict[str, str], where: str) -> bool:
    return "push" in attrs and parse_bool(attrs["push"], "push", where, empty=True)


def image_options(kind: str, attrs: dict[str, str], where: str) -> ImageOptions:
    """The ImageOptions the keys of an image output (store, image, oci) ask for."""
    compression = None
    if "compression" in attrs:
        name = attrs["compression"]
        if name not in COMPRESSION_NAMES:
            raise UsageError(f"{where}: compression={name!r} is not supported "
                             f"(use one of {', '.join(COMPRESSION_NAMES)})")
        compression = COMPRESSION_NAMES[name]
    level = None
    if "compression-level" in attrs:
        level = _level(attrs["compression-level"], compression or GZIP, where)
    force = "force-compression" in attrs and parse_bool(
        attrs["force-compression"], "force-compression", where, empty=True)
    # BuildKit: OCI media types for type=oci; for image outputs its default became OCI
    # too (buildx attaches attestations by default, which need them)
    oci_types = True
    if "oci-mediatypes" in attrs:
        oci_types = parse_bool(attrs["oci-mediatypes"], "oci-mediatypes", where)
    found = tuple(ann.parse_output_key(k, v, where) for k, v in attrs.items()
                  if ann.is_output_key(k))
    return ImageOptions(compression, level, force, oci_types, found)


def _level(text: str, compression: str, where: str) -> int:
    try:
        level = int(text, 10)
    except ValueError:
        raise UsageError(f"{where}: compression-level={text!r} is not an integer") from None
    if compression not in LEVELS:
        raise UsageError(f"{where}: compression-level does not apply to uncompressed layers")
    low, high = LEVELS[compression]
    if not low <= level <= high:
        name = {GZIP: "gzip", ZSTD: "zstd"}[compression]
        raise UsageError(f"{where}: compression-level={level} is out of range for {name} "
                         f"({low}..{high})")
    return level
