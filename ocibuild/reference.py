"""Image references: `[registry[:port]/]repository[:tag][@digest]`.

Parsing follows Docker's rules: the first path component names a registry only when
it contains a dot or a colon, is `localhost`, or is a bracketed IPv6 address;
otherwise the image lives on Docker Hub, whose one-component names sit under
`library/`. Docker Hub is written `docker.io` and reached at `registry-1.docker.io`.

This is the one image-name parser: local image names (ocibuild.cache.names) use it
too. Keep this module light to import (no HTTP client): the store imports it.
"""

from __future__ import annotations

from ocibuild.deferred import deferred_dataclass
from ocibuild.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DEFAULT_TAG = "latest"
OFFICIAL_PREFIX = "library/"  # Docker Hub's one-component names live under it

# the patterns a reference is checked against, compiled (and re imported) on first use:
# the rebuild memo's registry question needs only this module's names
_PATTERNS: dict[str, re.Pattern[str]] = {}
_SOURCES = {
    "component": r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$",
    "tag": r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
    "digest": r"^sha256:[a-f0-9]{64}$",
    "host": r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
            r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]{1,5})?$",
}


def _matches(kind: str, text: str) -> bool:
    pattern = _PATTERNS.get(kind)
    if pattern is None:
        import re

        pattern = _PATTERNS[kind] = re.compile(_SOURCES[kind])
    return pattern.match(text) is not None


_MAX_NAME = 255


class InvalidReferenceError(UsageError):
    """An image reference that does not parse; `reason` says which part is wrong."""

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def _invalid(original: str, reason: str) -> InvalidReferenceError:
    return InvalidReferenceError(f"invalid image reference {original!r}: {reason}",
                                 reason=reason)


@deferred_dataclass(frozen=True)  # dataclasses loads with the first instance
class Reference:
    """A parsed, normalized image reference."""

    registry: str  # e.g. "docker.io", "127.0.0.1:5000", "[::1]:5000"
    repository: str  # e.g. "library/alpine"
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """registry/repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """host[:port] the registry API answers on."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def hostname(self) -> str:
        """The registry's host name or address without the port or brackets."""
        host = self.registry
        if host.startswith("["):
            return host[1:host.index("]")]
        return host.rsplit(":", 1)[0] if ":" in host else host

    @property
    def is_loopback(self) -> bool:
        host = self.hostname
        if host == "localhost" or host.endswith(".localhost"):
            return True
        import ipaddress  # here: only a registry's TLS default asks

        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def identifier(self) -> str:
        """What the manifest URL takes: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        if not _matches("tag", tag):
            raise InvalidReferenceError(f"invalid tag {tag!r} for {self.name}")
        import dataclasses  # loaded by now: self is an instance

        return dataclasses.replace(self, tag=tag, digest="")

    def with_digest(self, digest: str) -> Reference:
        import dataclasses

        return dataclasses.replace(self, digest=digest)

    def familiar(self) -> str:
        """The short form people type: `alpine:3.19` for a Docker Hub library image."""
        return familiar(str(self))

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def familiar(name: str) -> str:
    """The short form of a normalized name (with or without tag and digest), as people
    type and read it: docker.io/library/alpine:3.19 -> alpine:3.19,
    docker.io/user/app -> user/app; names on other registries stay whole."""
    hub, official = f"{DOCKER_HUB}/", f"{DOCKER_HUB}/{OFFICIAL_PREFIX}"
    if name.startswith(official) and "/" not in name[len(official):]:
        return name[len(official):]
    return name.removeprefix(hub)


def _split_registry(text: str) -> tuple[str, str]:
    first, sep, rest = text.partition("/")
    # Docker also takes an upper-case first component for a host ("MyOrg/app"); here it
    # is refused as a repository name, which is the likelier mistake
    if sep and (first == "localhost" or "." in first or ":" in first or first.startswith("[")):
        return first, rest
    return "", text


def parse_reference(text: str, *, default_tag: str = DEFAULT_TAG) -> Reference:
    """Parse and normalize `text`; a tagless, digestless reference gets `default_tag`.

    Raises InvalidReferenceError with a message saying which part is wrong.
    """
    original = text
    if not text or text != text.strip():
        raise _invalid(original, "empty or spaces")
    if "://" in text:
        raise _invalid(original, "no scheme expected (write host/repo:tag)")
    digest = ""
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _matches("digest", digest):
            raise _invalid(original, "digest must be sha256:<64 hex digits>")
    registry, path = _split_registry(text)
    tag = ""
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1:]
        if not _matches("tag", tag):
            raise _invalid(original, f"bad tag {tag!r} (letters, digits, _ . -; at most 128; "
                                     "not starting with . or -)")
    if registry:
        if not _matches("host", registry):
            raise _invalid(original, f"bad registry host {registry!r}")
        last = registry.rsplit(":", 1)[-1]
        port = last if ":" in registry and last.isascii() and last.isdigit() else ""
        if port and not 0 < int(port) < 65536:
            raise _invalid(original, f"bad port {port}")
        if registry.lower() in _HUB_ALIASES:
            registry = DOCKER_HUB
    else:
        registry = DOCKER_HUB
    if not path:
        raise _invalid(original, "no repository name")
    for component in path.split("/"):
        if not _matches("component", component):
            hint = " (repository names are lowercase)" if component.lower() != component else ""
            raise _invalid(original, f"bad path component {component!r}{hint}")
    if registry == DOCKER_HUB and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if len(f"{registry}/{path}") > _MAX_NAME:
        raise _invalid(original, f"name longer than {_MAX_NAME} characters")
    if not tag and not digest:
        tag = default_tag
    return Reference(registry, path, tag, digest)


def parse_repository(text: str) -> Reference:
    """Parse a reference that must name a repository only (no tag, no digest)."""
    ref = parse_reference(text, default_tag="")
    if ref.tag or ref.digest:
        raise InvalidReferenceError(f"{text!r}: expected a repository without tag or digest")
    return ref


def normalize_registry(host: str) -> str:
    """A registry name as references spell it (Docker Hub aliases → docker.io)."""
    host = host.strip()
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix):]
    host = host.split("/", 1)[0]
    return DOCKER_HUB if host.lower() in _HUB_ALIASES else host
