"""Package URLs (https://github.com/package-url/purl-spec): `pkg:TYPE/NAMESPACE/NAME@VERSION
?QUALIFIERS`, as attestations name images (BuildKit's `RefToPURL`) and SBOMs name
packages.

An image name becomes `pkg:docker/NAMESPACE/NAME@TAG?digest=...&platform=...` from its
familiar form (`alpine`, not `docker.io/library/alpine`): the registry and the path
but the last component are the namespace, a name without tag or digest gets `latest`.
Qualifiers are sorted by key, as the spec asks; each part is percent-encoded except the
characters the spec leaves readable (`:` in a namespace or a digest stays).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from ocibuild.reference import DEFAULT_TAG, parse_reference


def purl(kind: str, namespace: str, name: str, version: str = "",
         qualifiers: Mapping[str, str] | None = None) -> str:
    text = f"pkg:{kind}/"
    if namespace:
        text += "/".join(quote(part, safe=":") for part in namespace.split("/") if part) + "/"
    text += quote(name, safe=":")
    if version:
        text += "@" + quote(version, safe=":+~")
    found = {k: v for k, v in (qualifiers or {}).items() if v}
    if found:
        text += "?" + "&".join(f"{k}={quote(v, safe=':')}" for k, v in sorted(found.items()))
    return text


def normalized_platform(text: str) -> str:
    """`os/arch[/variant]` as containerd normalizes it (arm64's v8 variant is implied)."""
    parts = text.split("/")
    if len(parts) == 3 and parts[1] == "arm64" and parts[2] in ("v8", "8"):
        parts = parts[:2]
    return "/".join(parts)


def image_purl(ref: str, platform: str = "", kind: str = "docker") -> str:
    """The purl BuildKit names an image by (`kind` "oci" for a local layout's image)."""
    parsed = parse_reference(ref, default_tag="")
    tag = parsed.tag or ("" if parsed.digest else DEFAULT_TAG)
    full = parsed.name
    hub, official = "docker.io/", "docker.io/library/"
    if full.startswith(official) and "/" not in full[len(official):]:
        full = full[len(official):]
    full = full.removeprefix(hub)
    namespace, _, name = full.rpartition("/")
    qualifiers = {"digest": parsed.digest,
                  "platform": normalized_platform(platform) if platform else ""}
    return purl(kind, namespace, name, tag, qualifiers)
