"""`-o/--output` values, parsed as buildx does: CSV `key=value` pairs, or a bare path."""

from __future__ import annotations

from dataclasses import dataclass, field

from ocibuild.errors import UsageError
from ocibuild.exporter import options

OUTPUT_TYPES = ("oci", "docker", "local", "image", "registry", "store")
_NEEDS_DEST = ("oci", "docker", "local")


@dataclass(frozen=True)
class OutputSpec:
    """A parsed -o/--output value."""

    type: str  # "oci" | "docker" | "local" | "image" | "store" ("registry" is parsed as
    # "image" with push=true)
    attrs: dict[str, str] = field(default_factory=dict)

    @property
    def dest(self) -> str | None:
        return self.attrs.get("dest")

    @property
    def writes_manifest(self) -> bool:
        """Whether the output holds an image manifest (and takes the image keys)."""
        return self.type in ("store", "image", "oci")

    def image_options(self) -> options.ImageOptions:
        return options.image_options(self.type, self.attrs, f"--output type={self.type}")

    @property
    def push(self) -> bool:
        return options.wants_push(self.attrs, f"--output type={self.type}")


def parse_output(text: str) -> OutputSpec:
    """Parse one -o value: `type=oci,dest=out.tar`, `type=local,dest=dir`, or `dir`."""
    text = text.strip()
    if not text:
        raise UsageError("empty --output")
    if "=" not in text:
        if text == "-":
            raise UsageError("--output -: writing to standard output is not supported; "
                             "give a file with type=oci,dest=FILE.tar")
        return OutputSpec("local", {"dest": text})
    import csv  # only for a given -o: a build to the store alone never loads it

    attrs: dict[str, str] = {}
    for item in next(csv.reader([text])):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise UsageError(f"--output {text}: {item!r} is not key=value")
        attrs[key] = value
    kind = attrs.pop("type", "")
    if not kind:
        raise UsageError(f"--output {text}: no type= (use one of {', '.join(OUTPUT_TYPES)})")
    if kind not in OUTPUT_TYPES:
        raise UsageError(
            f"--output {text}: unknown type {kind!r} (use one of {', '.join(OUTPUT_TYPES)})"
        )
    if kind == "registry":  # buildx's shorthand for an image output that is pushed
        kind, attrs["push"] = "image", "true"
    options.check_keys(kind, attrs, f"--output {text}")
    if kind in ("store", "image", "oci"):
        options.image_options(kind, attrs, f"--output {text}")  # refuse bad values now
    options.wants_push(attrs, f"--output {text}")
    _check_names(attrs.get("name", ""), text)
    if options.wants_tar(attrs, f"--output {text}") is False and kind == "docker":
        raise UsageError(f"--output {text}: type=docker writes a docker-archive tar only; "
                         "for a directory use type=oci,tar=false")
    if kind in _NEEDS_DEST and not attrs.get("dest"):
        raise UsageError(f"--output {text}: type={kind} needs dest=PATH")
    if attrs.get("dest") == "-":
        raise UsageError(f"--output {text}: writing to standard output is not supported")
    return OutputSpec(kind, attrs)


def _check_names(given: str, text: str) -> None:
    from ocibuild.cache import names

    for name in given.split(","):
        if name.strip():
            try:
                names.normalize_name(name.strip())
            except UsageError as exc:
                raise UsageError(f"--output {text}: name=: {exc.message}") from None
