"""Registry credentials: Docker's config.json, podman's auth.json and credential helpers.

Files are read in the order containers/image uses: `$REGISTRY_AUTH_FILE`,
`$XDG_RUNTIME_DIR/containers/auth.json`, `$XDG_CONFIG_HOME/containers/auth.json`, then
Docker's `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`). In each file a
`credHelpers` entry for the registry wins, then `credsStore`, then `auths`. `auths` keys
may carry a scheme or a path (`https://index.docker.io/v1/`, `host:5000`,
`host/team/app`); the longest key that covers the repository is used.
"""

from __future__ import annotations

import binascii
import contextlib
import os

from ocibuild.deferred import deferred_dataclass
from ocibuild.errors import OcibuildError
from ocibuild.reference import DOCKER_HUB, normalize_registry

TYPE_CHECKING = False  # typing costs a registry command ~2 ms
if TYPE_CHECKING:  # pathlib (with re and urllib.parse) loads once credentials are looked up
    from pathlib import Path
    from typing import Any

DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
IDENTITY_TOKEN_USER = "<token>"


@deferred_dataclass(frozen=True)
class Credentials:
    """A registry login: a user and a password, or an identity token."""
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth2 refresh token (docker login with an IdP)

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(username={self.username!r}, secret=***)"


class CredentialsError(OcibuildError):
    pass


def _docker_config_path() -> Path:
    from pathlib import Path

    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


def auth_files() -> list[Path]:
    """Credential files in lookup order (whether or not they exist)."""
    from pathlib import Path

    files: list[Path] = []
    if env := os.environ.get("REGISTRY_AUTH_FILE"):
        files.append(Path(env))
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        files.append(Path(runtime) / "containers" / "auth.json")
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    files.append(Path(config_home) / "containers" / "auth.json")
    files.append(_docker_config_path())
    return list(dict.fromkeys(files))


def default_login_file() -> Path:
    """Where `ocibuild login` writes without --authfile."""
    if env := os.environ.get("REGISTRY_AUTH_FILE"):
        from pathlib import Path

        return Path(env)
    return _docker_config_path()


def _server_url(registry: str) -> str:
    """The name credential helpers and config.json use for a registry."""
    return DOCKER_HUB_AUTH_KEY if registry == DOCKER_HUB else registry


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read: {exc.strerror}") from None
    if not data.strip():
        return {}
    import json  # here: most commands find no credentials file (~1.4 ms)

    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise CredentialsError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CredentialsError(f"{path}: expected a JSON object")
    return doc


def _key_matches(key: str, registry: str, repository: str) -> int:
    """Length of the match of an `auths` key against registry/repository (-1: none)."""
    raw = key.strip()
    for prefix in ("https://", "http://"):
        if raw.startswith(prefix):
            raw = raw[len(prefix):]
    host, _, path = raw.partition("/")
    if normalize_registry(host) != registry:
        return -1
    path = path.strip("/")
    if key.strip().rstrip("/") in (DOCKER_HUB_AUTH_KEY.rstrip("/"), "index.docker.io/v1"):
        path = ""
    if not path:
        return 0
    if repository == path or repository.startswith(path + "/"):
        return len(path)
    return -1


def _decode_entry(entry: Any, where: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    token = entry.get("identitytoken") or ""
    if entry.get("auth"):
        try:
            import base64  # here: most registries ask for no credentials

            decoded = base64.b64decode(entry["auth"], validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialsError(f"{where}: the 'auth' value is not base64 user:password") \
                from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise CredentialsError(f"{where}: the 'auth' value is not user:password")
        return Credentials(user, password, token)
    if entry.get("username") or entry.get("password"):
        return Credentials(entry.get("username", ""), entry.get("password", ""), token)
    if token:
        return Credentials(identity_token=token)
    return None


def run_helper(helper: str, action: str, payload: str) -> str:
    """Run `docker-credential-HELPER ACTION` with `payload` on stdin; its stdout."""
    import shutil  # here: most commands run no helper
    import subprocess

    exe = shutil.which(f"docker-credential-{helper}")
    if exe is None:
        raise CredentialsError(
            f"credential helper docker-credential-{helper} is not on PATH "
            "(named by credsStore/credHelpers in the Docker config)"
        )
    proc = subprocess.run([exe, action], input=payload, capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip()
        if action == "get" and "credentials not found" in out.lower():
            return ""
        raise CredentialsError(f"docker-credential-{helper} {action} failed: {out[:300]}")
    return proc.stdout


def _from_helper(helper: str, registry: str) -> Credentials | None:
    out = run_helper(helper, "get", _server_url(registry))
    if not out.strip():
        return None
    import json

    try:
        doc = json.loads(out)
    except ValueError:
        raise CredentialsError(f"docker-credential-{helper} get: output is not JSON") from None
    user, secret = doc.get("Username", ""), doc.get("Secret", "")
    if not user and not secret:
        return None
    if user == IDENTITY_TOKEN_USER:
        return Credentials(identity_token=secret)
    return Credentials(user, secret)


def _from_file(path: Path, registry: str, repository: str) -> Credentials | None:
    doc = _read_json(path)
    if doc is None:
        return None
    helpers = doc.get("credHelpers") or {}
    for key, helper in helpers.items():
        if _key_matches(key, registry, repository) >= 0 and helper:
            return _from_helper(str(helper), registry)
    best: tuple[int, Any] = (-1, None)
    for key, entry in (doc.get("auths") or {}).items():
        n = _key_matches(key, registry, repository)
        if n > best[0]:
            best = (n, entry)
    if doc.get("credsStore"):
        creds = _from_helper(str(doc["credsStore"]), registry)
        if creds is not None:
            return creds
    return _decode_entry(best[1], str(path)) if best[0] >= 0 else None


def find_credentials(registry: str, repository: str = "",
                     authfile: Path | None = None) -> Credentials | None:
    """Credentials for `registry` (normalized, e.g. docker.io), or None: anonymous."""
    files = [authfile] if authfile is not None else auth_files()
    for path in files:
        creds = _from_file(path, registry, repository)
        if creds is not None:
            return creds
    return None


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    import json

    from ocibuild.atomic import atomic_file

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with atomic_file(path, mode=0o600, text=True) as f:
        json.dump(doc, f, indent="\t")
        f.write("\n")


def _helper_for(doc: dict[str, Any], registry: str) -> str:
    for key, helper in (doc.get("credHelpers") or {}).items():
        if _key_matches(key, registry, "") == 0 and helper:
            return str(helper)
    return str(doc.get("credsStore") or "")


def store_credentials(registry: str, creds: Credentials, authfile: Path | None = None) -> str:
    """Save credentials for `registry`; returns where they went (file or helper)."""
    path = authfile or default_login_file()
    doc = _read_json(path) or {}
    helper = _helper_for(doc, registry)
    key = _server_url(registry)
    if helper:
        import json

        user = IDENTITY_TOKEN_USER if creds.identity_token else creds.username
        secret = creds.identity_token or creds.password
        run_helper(helper, "store",
                   json.dumps({"ServerURL": key, "Username": user, "Secret": secret}))
        doc.setdefault("auths", {})[key] = {}
        _write_json(path, doc)
        return f"docker-credential-{helper}"
    auths = doc.setdefault("auths", {})
    for old in [k for k in auths if _key_matches(k, registry, "") == 0]:
        del auths[old]
    entry: dict[str, str] = {}
    if creds.username or creds.password:
        raw = f"{creds.username}:{creds.password}".encode()
        import base64

        entry["auth"] = base64.b64encode(raw).decode("ascii")
    if creds.identity_token:
        entry["identitytoken"] = creds.identity_token
    auths[key] = entry
    _write_json(path, doc)
    return str(path)


def remove_credentials(registry: str, authfile: Path | None = None) -> bool:
    """Forget credentials for `registry`; True if there were any."""
    path = authfile or default_login_file()
    doc = _read_json(path)
    if doc is None:
        return False
    removed = False
    helper = _helper_for(doc, registry)
    if helper:
        with contextlib.suppress(CredentialsError):
            run_helper(helper, "erase", _server_url(registry))
            removed = True
    auths = doc.get("auths") or {}
    for key in [k for k in auths if _key_matches(k, registry, "") == 0]:
        del auths[key]
        removed = True
    if removed:
        _write_json(path, doc)
    return removed
