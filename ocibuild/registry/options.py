"""Settings that decide how registries are reached (TLS, credentials, parallelism)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

from ocibuild.errors import OcibuildError, UsageError
from ocibuild.reference import normalize_registry
from ocibuild.registry.timeout import DEFAULT_TIMEOUT, TIMEOUT_ENV

TYPE_CHECKING = False  # typing costs a registry command ~2 ms
# ssl loads when a TLS context is made, not with the options; pathlib (with re and
# urllib.parse) where a path is given or TLS looks in the certs.d directories
if TYPE_CHECKING:
    import ssl
    from pathlib import Path

DEFAULT_CERTS_DIRS: tuple[str, ...] = ("/etc/containers/certs.d", "/etc/docker/certs.d")
DEFAULT_JOBS = 4


def parse_timeout(text: str, what: str) -> float:
    """Seconds (> 0) from `text`; a UsageError naming `what` otherwise."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 86400:
        raise UsageError(f"{what}={text!r}: expected a number of seconds (e.g. 60)")
    return value


def timeout_from_env() -> float:
    """$OCIBUILD_REGISTRY_TIMEOUT, else 60 s."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    return parse_timeout(text, TIMEOUT_ENV) if text else DEFAULT_TIMEOUT


class RegistryOptions:
    """How registries are reached. `RegistryOptions.build(insecure=["localhost:5000"],
    ca_files=["ca.pem"], authfile="auth.json")` makes one from what the CLI's
    --insecure-registry, --registry-ca and --authfile flags take; the defaults trust the
    system's CAs and certs.d directories and read credentials as `ocibuild login` and
    docker save them. Immutable, compared and hashed by its fields.

    Not a dataclass: a cached `build --push` answered by the rebuild memo makes one to
    ask the registry, and loading `dataclasses` would be a fifth of that question's
    cost."""

    __slots__ = ("insecure", "ca_files", "certs_dirs", "authfile", "jobs", "timeout",
                 "connect_timeout", "attempts", "backoff", "chunk_size")

    insecure: frozenset[str]  # registries (host[:port]) reached over plain http
    ca_files: tuple[Path, ...]  # extra CA bundles (--registry-ca)
    certs_dirs: tuple[str | Path, ...]  # DIR/HOST[:PORT]/*.crt, *.cert + *.key
    authfile: Path | None  # read credentials only from this file
    jobs: int  # blobs transferred at once
    # a request that makes no progress for this long fails (no answer, no body bytes);
    # a connection is given at most connect_timeout of it
    timeout: float
    connect_timeout: float
    attempts: int  # tries per request on 5xx and connection errors
    backoff: float  # first retry delay (doubles each time)
    chunk_size: int  # blobs larger than this are uploaded in PATCH chunks of it

    def __init__(self, insecure: frozenset[str] = frozenset(), ca_files: tuple[Path, ...] = (),
                 certs_dirs: tuple[str | Path, ...] = DEFAULT_CERTS_DIRS,
                 authfile: Path | None = None, jobs: int = DEFAULT_JOBS,
                 timeout: float | None = None, connect_timeout: float = 10.0,
                 attempts: int = 4, backoff: float = 0.25, chunk_size: int = 64 << 20
                 ) -> None:
        values = (insecure, ca_files, certs_dirs, authfile, jobs,
                  timeout_from_env() if timeout is None else timeout, connect_timeout,
                  attempts, backoff, chunk_size)
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"RegistryOptions is immutable: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RegistryOptions):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:  # copy and pickle
        return RegistryOptions, self._fields()

    def __repr__(self) -> str:
        return "RegistryOptions(" + ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self.__slots__) + ")"

    @classmethod
    def build(cls, *, insecure: Iterable[str] = (), ca_files: Iterable[str | Path] = (),
              authfile: str | Path | None = None, jobs: int | None = None,
              timeout: float | None = None) -> RegistryOptions:
        ca_files = tuple(ca_files)
        if ca_files or authfile:
            from pathlib import Path

            ca_files = tuple(Path(p) for p in ca_files)
            authfile = Path(authfile) if authfile else None
        return cls(
            insecure=frozenset(normalize_registry(h) for h in insecure),
            ca_files=ca_files,
            authfile=authfile or None,
            jobs=jobs or DEFAULT_JOBS,
            timeout=timeout or timeout_from_env(),
        )

    def is_insecure(self, registry: str) -> bool:
        return registry in self.insecure or registry.split(":")[0] in self.insecure


def ssl_context(registry: str, api_host: str, options: RegistryOptions, *,
                every_system_ca: bool = False) -> ssl.SSLContext:
    """System CAs, plus certs.d CAs and client certificates for this host, plus --registry-ca.

    The system's CAs are those of OpenSSL's default places, its CA directory and its CA
    bundle file. The bundle is parsed whole when it is loaded (~150 certificates, ~20 ms
    of CPU for every command that reaches a registry over TLS); the directory is read a
    certificate at a time, when a chain names its issuer. So the context trusts the
    directory alone, and a chain it rejects (one ending at a CA added to the bundle
    only, say) is verified again with `every_system_ca`, the default trust of both
    places, which decides (http.Pool does that). Where SSL_CERT_FILE names a bundle, or
    the directory holds no certificates under OpenSSL's hashed names, the default trust
    is used at once."""
    import ssl
    from pathlib import Path

    directory = None if every_system_ca else _system_ca_directory()
    if directory is not None:
        ctx = ssl.create_default_context(capath=directory)
    else:
        ctx = ssl.create_default_context()
    for path in options.ca_files:
        try:
            ctx.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise OcibuildError(f"--registry-ca {path}: cannot load: {exc}") from None
    names = dict.fromkeys([registry, api_host])
    for base in options.certs_dirs:
        for name in names:
            d = Path(base) / name
            if not d.is_dir():
                continue
            for crt in sorted(d.glob("*.crt")):
                try:
                    ctx.load_verify_locations(cafile=str(crt))
                except (OSError, ssl.SSLError) as exc:
                    raise OcibuildError(f"{crt}: cannot load CA certificate: {exc}") from None
            for cert in sorted(d.glob("*.cert")):
                key = cert.with_suffix(".key")
                if not key.is_file():
                    raise OcibuildError(f"{cert}: client certificate without {key.name}")
                try:
                    ctx.load_cert_chain(str(cert), str(key))
                except (OSError, ssl.SSLError) as exc:
                    raise OcibuildError(f"{cert}: cannot load client certificate: {exc}") \
                        from None
    return ctx


def _system_ca_directory() -> str | None:
    """OpenSSL's CA directory (SSL_CERT_DIR, else its default), where it holds
    certificates under hashed names, unless SSL_CERT_FILE names a bundle to trust."""
    if os.environ.get("SSL_CERT_FILE"):
        return None
    import ssl

    directory = ssl.get_default_verify_paths().capath
    if directory is None:
        return None
    try:
        with os.scandir(directory) as entries:
            if any(_hashed_name(entry.name) for entry in entries):
                return directory
    except OSError:
        pass
    return None


def _hashed_name(name: str) -> bool:
    """A certificate's name in an OpenSSL CA directory: its subject's hash (8 lowercase
    hex digits), a dot and a number (5d3033c5.0)."""
    stem, dot, number = name.partition(".")
    return len(stem) == 8 and bool(dot) and number.isdigit() and number.isascii() \
        and all(c in "0123456789abcdef" for c in stem)
