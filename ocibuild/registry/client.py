"""An HTTP client for one registry: scheme detection, auth, retries, the v2 endpoints.

Requests go through `http.py` (keep-alive connections shared by threads, streamed
request and response bodies, no buffering layers). Auth follows the distribution token
spec: the first `GET /v2/` learns the challenge; each request then carries a token for
exactly the scopes it needs (`repository:NAME:pull` or `…:pull,push`, plus the mount
source), kept per scope set until it expires, so a push never reuses a pull-only token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence

from ocibuild import interrupt
from ocibuild.deferred import deferred_dataclass
from ocibuild.errors import OcibuildError
from ocibuild.oci import limits, mediatypes
from ocibuild.reference import DOCKER_HUB, DOCKER_HUB_API
from ocibuild.registry.auth import Credentials, find_credentials
from ocibuild.registry.challenge import Challenge, pick_challenge
from ocibuild.registry.errors import (
    AuthenticationError,
    RegistryError,
    UnreachableError,
    describe_status,
    error_for_status,
    registry_message,
)
from ocibuild.registry.http import ConnectTimeout, HttpError, Pool, ReadTimeout, Response
from ocibuild.registry.options import TIMEOUT_ENV, RegistryOptions, ssl_context

TYPE_CHECKING = False  # typing costs a registry command ~2 ms
if TYPE_CHECKING:
    import ssl
    from typing import TypeVar

    from ocibuild.registry.wire import Body
    from ocibuild.threads import Task

    T = TypeVar("T")


RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MANIFEST_ACCEPT = ", ".join([
    mediatypes.OCI_INDEX, mediatypes.OCI_MANIFEST,
    mediatypes.DOCKER_MANIFEST_LIST, mediatypes.DOCKER_MANIFEST,
])
TOKEN_MARGIN = 10.0  # seconds before expiry a token is no longer used
USER_AGENT = "ocibuild"


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


@deferred_dataclass(frozen=True)
class _Token:
    """A registry bearer token and when it is due for renewal."""
    value: str
    expires: float


def _operation(method: str, url: str) -> str:
    """`GET /v2/…` of a request, without the query (scopes, upload state)."""
    from urllib.parse import urlsplit

    return f"{method} {urlsplit(url).path or '/'}"


def _netloc(url: str) -> str:
    # urllib.parse (with re and ipaddress) loads only where a message or a token needs
    # it: not on the way of a request that is answered (a cached push's HEAD)
    from urllib.parse import urlsplit

    return urlsplit(url).netloc


class RegistryClient:
    """Talks to one registry (one host). Safe to share between threads."""

    def __init__(self, registry: str, options: RegistryOptions | None = None) -> None:
        self.registry = registry
        self.options = options or RegistryOptions()
        self.api_host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        # A TLS context loads ssl (~10 ms), and the system's CA bundle where a chain needs
        # it (~20 ms more, options.ssl_context): a registry reached over plain http
        # (--insecure-registry) makes one only if it redirects to https. For the others it
        # is made at once, so a bad --registry-ca file is reported before any request.
        self._tls: ssl.SSLContext | None = None
        self._tls_every_system_ca: ssl.SSLContext | None = None
        if not self.options.is_insecure(registry):
            self._tls = self._tls_context()
        self._pool = Pool(self._tls_context, per_origin=max(4, self.options.jobs + 2),
                          headers={"User-Agent": USER_AGENT})
        self._lock = threading.Lock()
        self._token_lock = threading.Lock()
        self._base: str | None = None
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._creds: dict[str, Credentials | None] = {}
        self.credentials_override: Credentials | None = None
        # set when the command is interrupted: transfers stop at their next chunk
        self.cancelled = threading.Event()

    # -- set-up -----------------------------------------------------------------------
    def _tls_context(self, every_system_ca: bool = False) -> ssl.SSLContext:
        if every_system_ca:
            if self._tls_every_system_ca is None:
                self._tls_every_system_ca = ssl_context(
                    self.registry, self.api_host, self.options, every_system_ca=True)
            return self._tls_every_system_ca
        if self._tls is None:
            self._tls = ssl_context(self.registry, self.api_host, self.options)
        return self._tls

    @property
    def base_url(self) -> str:
        return self._base_url(self.registry)

    def _base_url(self, what: str) -> str:
        if self._base is None:
            self.ping(what)
        assert self._base is not None
        return self._base

    def ping(self, what: str) -> None:
        """Find the scheme and the auth challenge with `GET /v2/` (once per client)."""
        with self._lock:
            if self._base is not None:
                return
            schemes = ["https"]
            if self.options.is_insecure(self.registry):
                schemes = ["http"]
            elif _is_loopback(self.registry):
                schemes = ["https", "http"]  # as Docker does for local registries
            last: BaseException | None = None
            deadline = time.monotonic() + self.options.timeout
            for scheme in schemes:
                base = f"{scheme}://{self.api_host}"
                # a TLS failure against a plain-http local registry needs no retry
                tries = 1 if scheme == "https" and len(schemes) > 1 else 2
                try:
                    resp = self._send("GET", base + "/v2/", {}, None, what, attempts_left=tries,
                                      deadline=deadline)
                except UnreachableError as exc:
                    if "certificate verify failed" in exc.message.lower():
                        raise UnreachableError(
                            f"{exc.message}; trust the registry's CA with --registry-ca FILE "
                            f"or /etc/containers/certs.d/{self.registry}/ca.crt") from None
                    last = exc
                    continue
                data = self.read_body(resp, 65536, what, "GET", base + "/v2/")
                if resp.status == 401:
                    self._challenge = pick_challenge(resp.headers.get("WWW-Authenticate", ""))
                elif resp.status >= 500:
                    raise error_for_status(f"{what}: {base}/v2/", resp.status, data)
                self._base = base
                return
            assert last is not None
            raise last

    def skip_ping(self) -> None:
        """Take the scheme the options leave no doubt about (http for an insecure
        registry, https for one not on this machine) without the ping; the challenge then
        comes with the first request's 401, which request() answers. A local registry
        is still pinged when a request needs it: that ping chooses https or http."""
        with self._lock:
            if self._base is None and self.options.is_insecure(self.registry):
                self._base = f"http://{self.api_host}"
            elif self._base is None and not _is_loopback(self.registry):
                self._base = f"https://{self.api_host}"

    # -- credentials and tokens -----------------------------------------------------------
    def credentials(self, repository: str) -> Credentials | None:
        if self.credentials_override is not None:
            return self.credentials_override
        with self._lock:
            if repository not in self._creds:
                self._creds[repository] = find_credentials(
                    self.registry, repository, self.options.authfile)
            return self._creds[repository]

    def _authorization(self, scopes: Sequence[str], what: str) -> str | None:
        ch = self._challenge
        if ch is None:
            return None
        repo = _repository_of(scopes)
        creds = self.credentials(repo)
        if ch.scheme == "basic":
            if creds is None or not (creds.username or creds.password):
                return None
            return _basic(creds)
        token = self._token(ch, tuple(merge_scopes(scopes)), creds, what)
        return f"Bearer {token}" if token else None

    def _token(self, ch: Challenge, scopes: tuple[str, ...], creds: Credentials | None,
               what: str) -> str:
        with self._token_lock:
            cached = self._tokens.get(scopes)
            if cached is not None and cached.expires > time.monotonic():
                return cached.value
            token = self._fetch_token(ch, scopes, creds, what)
            self._tokens[scopes] = token
            return token.value

    def _forget_token(self, scopes: Sequence[str]) -> None:
        with self._token_lock:
            self._tokens.pop(tuple(merge_scopes(scopes)), None)

    def _fetch_token(self, ch: Challenge, scopes: tuple[str, ...], creds: Credentials | None,
                     what: str) -> _Token:
        if not ch.realm:
            raise AuthenticationError(f"{what}: the registry's Bearer challenge has no realm")
        if creds is not None and (creds.identity_token or creds.username or creds.password):
            self._check_realm(ch.realm, what)
        from urllib.parse import urlencode

        headers: dict[str, str] = {}
        if creds is not None and creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "client_id": USER_AGENT, "scope": " ".join(scopes)}
            if ch.service:
                form["service"] = ch.service
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            method, url, body = "POST", ch.realm, urlencode(form).encode()
        else:
            params = ([("service", ch.service)] if ch.service else []) + [
                ("scope", s) for s in scopes]
            sep = "&" if "?" in ch.realm else "?"
            url = ch.realm + (sep + urlencode(params) if params else "")
            method, body = "GET", None
            if creds is not None and (creds.username or creds.password):
                headers["Authorization"] = _basic(creds)
        started = time.monotonic()
        resp = self._send(method, url, headers, body, f"{what}: token server {ch.realm}",
                          attempts_left=self.options.attempts)
        data = self.read_body(resp, 1 << 20, what, method, url)
        if resp.status in (401, 403):
            who = f"user {creds.username!r}" if creds and creds.username else "anonymous access"
            detail = registry_message(data)
            raise AuthenticationError(
                f"{what}: {describe_status(resp.status)} from the token server for {who}"
                + (f" ({detail})" if detail else "") + "; check the credentials (ocibuild login)",
                status=resp.status,
            )
        if resp.status != 200:
            raise error_for_status(f"{what}: token server {ch.realm}", resp.status, data)
        import json  # here: a registry without auth sends no token (~1.4 ms)

        try:
            doc = json.loads(data)
            value = doc.get("token") or doc.get("access_token")
            expires_in = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            raise RegistryError(f"{what}: the token server sent no valid JSON token") from None
        if not isinstance(value, str) or not value:
            raise RegistryError(f"{what}: the token server's answer holds no token")
        return _Token(value, started + max(expires_in - TOKEN_MARGIN, 1.0))

    def _check_realm(self, realm: str, what: str) -> None:
        """Credentials go to a token server over https, or over plain http only to a host
        the user named with --insecure-registry (or a loopback one, as for registries):
        a registry must not lead them across the network in clear text."""
        from urllib.parse import urlsplit

        parts = urlsplit(realm)
        host = parts.netloc.rpartition("@")[2]
        if parts.scheme == "https" and host:
            return
        if parts.scheme == "http" and host and (
                self.options.is_insecure(host) or _is_loopback(host)):
            return
        if parts.scheme != "http" or not host:
            raise AuthenticationError(f"{what}: the registry's token realm {realm!r} is not "
                                      "an https URL")
        raise AuthenticationError(
            f"{what}: the registry asks for the credentials to be sent to {realm}: plain "
            f"http to another host, refused (credentials go to a token server over https, "
            f"or over http to a host named by --insecure-registry {parts.hostname})")

    # -- requests ---------------------------------------------------------------------
    def _send(self, method: str, url: str, headers: Mapping[str, str], body: Body, what: str,
              *, attempts_left: int, deadline: float | None = None) -> Response:
        """One request with retries on connection errors (for replayable bodies), all
        within one timeout: an answer that takes longer is not waited for twice."""
        delay = self.options.backoff
        if deadline is None:
            deadline = time.monotonic() + self.options.timeout
        while True:
            left = max(deadline - time.monotonic(), 0.05)
            try:
                return self._pool.request(
                    method, url, headers=headers, body=body,
                    connect_timeout=min(self.options.connect_timeout, left), read_timeout=left)
            except HttpError as exc:
                if isinstance(exc, ConnectTimeout | ReadTimeout):
                    raise self.timeout_error(what, method, url, exc) from None
                attempts_left -= 1
                if attempts_left <= 0 or time.monotonic() + delay >= deadline:
                    raise UnreachableError(
                        f"{what}: cannot reach {_netloc(url)}: {exc.reason}") \
                        from None
                time.sleep(delay)
                delay *= 2

    def timeout_error(self, what: str, method: str, url: str,
                      exc: HttpError) -> UnreachableError:
        host = _netloc(url)
        if isinstance(exc, ConnectTimeout):
            seconds = min(self.options.connect_timeout, self.options.timeout)
            return UnreachableError(
                f"{what}: cannot reach {host}: no connection within {seconds:g} s "
                f"({_operation(method, url)}); check that it is up and reachable from here")
        return UnreachableError(
            f"{what}: {host} made no progress for {self.options.timeout:g} s "
            f"({_operation(method, url)}); a slow registry needs a longer "
            f"--registry-timeout (or {TIMEOUT_ENV})")

    def read_body(self, resp: Response, limit: int, what: str, method: str,
                  url: str) -> bytes:
        """At most `limit` bytes of a response's body, the connection released; a stalled
        or broken body is an UnreachableError naming the request."""
        try:
            return resp.read(limit)
        except HttpError as exc:
            if isinstance(exc, ReadTimeout):
                raise self.timeout_error(what, method, url, exc) from None
            raise UnreachableError(f"{what}: {_netloc(url)} broke off its answer "
                                   f"({_operation(method, url)}): {exc.reason}") from None
        finally:
            resp.release()

    def request(self, method: str, path: str, *, scopes: Sequence[str], what: str,
                headers: Mapping[str, str] | None = None, body: Body = None,
                ok: Iterable[int] = (200,), replayable: bool | None = None) -> Response:
        """Send a request with auth and retries; the response is unread (stream it or
        call `.read()`), and its status is one of `ok` or a RegistryError is raised."""
        url = path if "://" in path else self._base_url(what) + path
        ok = frozenset(ok)
        if replayable is None:
            replayable = body is None or isinstance(body, bytes)
        attempts = self.options.attempts if replayable else 1
        delay = self.options.backoff
        scopes = list(scopes)
        reauthorized = False
        while True:
            hdrs = dict(headers or {})
            auth = self._authorization(scopes, what)
            if auth:
                hdrs["Authorization"] = auth
            resp = self._send(method, url, hdrs, body, what, attempts_left=attempts)
            if resp.status == 401 and not reauthorized:
                challenge = pick_challenge(resp.headers.get("WWW-Authenticate", ""))
                if challenge is not None:
                    _drain(resp)
                    self._forget_token(scopes)
                    self._challenge = challenge
                    scopes = merge_scopes([*scopes, *challenge.scopes])
                    self._forget_token(scopes)
                    reauthorized = True
                    if replayable:
                        continue
                    raise AuthenticationError(
                        f"{what}: {describe_status(401)}: the registry asked for credentials "
                        "mid-upload", status=401)
            if resp.status in RETRY_STATUSES and replayable and attempts > 1:
                attempts -= 1
                _drain(resp)
                time.sleep(delay)
                delay *= 2
                continue
            if resp.status not in ok:
                data = self.read_body(resp, 65536, what, method, url)
                raise error_for_status(what, resp.status, data)
            return resp

    def absolute(self, location: str) -> str:
        """An upload Location header as an absolute URL."""
        from urllib.parse import urljoin

        return urljoin(self.base_url + "/", location)

    # -- endpoints --------------------------------------------------------------------
    def get_manifest(self, repository: str, identifier: str, what: str
                     ) -> tuple[bytes, str, str]:
        """(bytes, media type, Docker-Content-Digest header) of a manifest or index."""
        path = f"/v2/{repository}/manifests/{identifier}"
        resp = self.request("GET", path, scopes=[pull_scope(repository)], what=what,
                            headers={"Accept": MANIFEST_ACCEPT})
        data = self.read_body(resp, limits.MANIFEST.cap + 1, what, "GET", path)
        limits.refuse_oversized(limits.MANIFEST, len(data), what, identifier)
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return data, media_type, resp.headers.get("Docker-Content-Digest", "")

    def blob_exists(self, repository: str, digest: str, what: str,
                    scopes: Sequence[str] | None = None) -> bool:
        resp = self.request("HEAD", f"/v2/{repository}/blobs/{digest}",
                            scopes=scopes or [pull_scope(repository)], what=what,
                            ok=(200, 404))
        _drain(resp)
        return resp.status == 200

    def manifest_exists(self, repository: str, identifier: str, what: str,
                        scopes: Sequence[str] | None = None) -> str | None:
        """The digest the registry reports for a manifest, or None if it has none."""
        resp = self.request("HEAD", f"/v2/{repository}/manifests/{identifier}",
                            scopes=scopes or [pull_scope(repository)], what=what,
                            headers={"Accept": MANIFEST_ACCEPT}, ok=(200, 404))
        _drain(resp)
        if resp.status != 200:
            return None
        return resp.headers.get("Docker-Content-Digest", "") or identifier

    def open_blob(self, repository: str, digest: str, what: str, offset: int = 0
                  ) -> Response:
        """A streaming response for a blob, from `offset` (status 206) or whole (200)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        return self.request("GET", f"/v2/{repository}/blobs/{digest}",
                            scopes=[pull_scope(repository)], what=what, headers=headers,
                            ok=(200, 206))

    def put_manifest(self, repository: str, identifier: str, data: bytes, media_type: str,
                     what: str) -> str:
        resp = self.request("PUT", f"/v2/{repository}/manifests/{identifier}",
                            scopes=[push_scope(repository)], what=what, body=data,
                            headers={"Content-Type": media_type}, ok=(200, 201, 202))
        _drain(resp)
        return resp.headers.get("Docker-Content-Digest", "")

    def prepare(self, scopes: Sequence[str], what: str) -> None:
        """Do ahead what the first request for `scopes` would: the ping, and the token
        for exactly those scopes when the registry asks for one (kept as a request's)."""
        self.ping(what)
        self._authorization(list(scopes), what)

    def check_credentials(self, what: str) -> None:
        """Authenticate once with the current credentials; AuthenticationError if refused."""
        resp = self.request("GET", "/v2/", scopes=[], what=what, ok=(200,))
        _drain(resp)

    def cancel(self) -> None:
        """Stop every transfer in flight (TransferCancelled, or a connection error):
        each of the client's connections is shut, which ends a blocked send or read."""
        self.cancelled.set()
        self._pool.shut()

    def check_cancelled(self, what: str) -> None:
        if self.cancelled.is_set() or interrupt.requested.is_set():
            raise TransferCancelled(f"{what}: cancelled")

    def close(self) -> None:
        self._pool.close()


class TransferCancelled(OcibuildError):
    """A transfer stopped because the command was interrupted."""


def wait_all(tasks: Iterable[Task[T]], clients: Iterable[RegistryClient]) -> list[T]:
    """The tasks' results in order. When this thread is interrupted (Ctrl-C), the
    clients' transfers are cancelled first, so that the caller's threads, which it
    waits for as it leaves their block, are not kept waiting for whole blobs."""
    tasks = list(tasks)
    try:
        return [task.result() for task in tasks]
    except BaseException:
        for client in clients:
            client.cancel()
        for task in tasks:
            task.cancel()
        raise


def merge_scopes(scopes: Iterable[str]) -> list[str]:
    """One scope per resource with the union of its actions, in a stable order."""
    merged: dict[str, list[str]] = {}
    for scope in scopes:
        resource, sep, actions = scope.rpartition(":")
        if not sep or not resource:
            merged.setdefault(scope, [])
            continue
        have = merged.setdefault(resource, [])
        have.extend(a for a in actions.split(",") if a and a not in have)
    return sorted(f"{r}:{','.join(sorted(a))}" if a else r for r, a in merged.items())


def _drain(resp: Response) -> None:
    resp.drain()


def _repository_of(scopes: Sequence[str]) -> str:
    for scope in scopes:
        parts = scope.split(":")
        if len(parts) >= 3 and parts[0] == "repository":
            return ":".join(parts[1:-1])
    return ""


def _basic(creds: Credentials) -> str:
    """The Basic authorization of `creds` (base64, and the re it loads, only then)."""
    import base64

    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _is_loopback(registry: str) -> bool:
    from ocibuild.reference import Reference

    return Reference(registry, "x").is_loopback


class ClientPool:
    """One RegistryClient per registry, shared by everything a command does."""

    def __init__(self, options: RegistryOptions | None = None) -> None:
        self.options = options or RegistryOptions()
        self._clients: dict[str, RegistryClient] = {}
        self._lock = threading.Lock()

    def get(self, registry: str) -> RegistryClient:
        with self._lock:
            if registry not in self._clients:
                self._clients[registry] = RegistryClient(registry, self.options)
            return self._clients[registry]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
