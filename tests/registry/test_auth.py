"""Credentials (Docker config.json, podman auth.json, credential helpers), login and
logout, and the bearer-token flow against a real registry and token server."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from ocibuild.registry import (
    ClientPool,
    Credentials,
    RegistryOptions,
    find_credentials,
    parse_reference,
    pull,
    push_image,
    remove_credentials,
    store_credentials,
)
from ocibuild.registry import client as client_module
from ocibuild.registry.challenge import parse_challenges, pick_challenge
from tests.registry.conftest import BaseImages, Cli
from tests.support.registry_server import PASSWORD, USER, RegistryServer


@pytest.fixture
def auth_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME with no credential files; returns it."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return home


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def test_docker_config_auths(auth_env: Path) -> None:
    _write(auth_env / ".docker/config.json", {"auths": {
        "https://index.docker.io/v1/": {"auth": _auth("hub", "pw1")},
        "reg.example:5000": {"auth": _auth("me", "pw:with:colons")},
        "https://tok.example": {"identitytoken": "refresh-123"},
    }})
    assert find_credentials("docker.io", "library/alpine") == Credentials("hub", "pw1")
    assert find_credentials("reg.example:5000", "a") == Credentials("me", "pw:with:colons")
    assert find_credentials("tok.example", "a") == Credentials(identity_token="refresh-123")
    assert find_credentials("other.example", "a") is None


def test_podman_auth_json_comes_first_and_repository_keys_win(
        auth_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = auth_env / "run"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    _write(auth_env / ".docker/config.json", {"auths": {"reg.example": {"auth": _auth("d", "1")}}})
    _write(runtime / "containers/auth.json", {"auths": {
        "reg.example": {"auth": _auth("p", "2")},
        "reg.example/team": {"auth": _auth("team", "3")},
    }})
    assert find_credentials("reg.example", "team/app") == Credentials("team", "3")
    assert find_credentials("reg.example", "teamwork/app") == Credentials("p", "2")
    explicit = auth_env / "explicit.json"
    _write(explicit, {"auths": {"reg.example": {"auth": _auth("e", "4")}}})
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(explicit))
    assert find_credentials("reg.example", "team/app") == Credentials("e", "4")


@pytest.fixture
def cred_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real docker-credential-ocibtest program on PATH keeping secrets in a JSON file."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    db = tmp_path / "helper-db.json"
    db.write_text("{}")
    script = bindir / "docker-credential-ocibtest"
    script.write_text(f"""#!{os.sys.executable}
import json, sys
db = {str(db)!r}
data = json.load(open(db))
action = sys.argv[1]
payload = sys.stdin.read()
if action == "get":
    entry = data.get(payload.strip())
    if entry is None:
        print("credentials not found in native keychain"); sys.exit(1)
    print(json.dumps({{"ServerURL": payload.strip(), **entry}}))
elif action == "store":
    doc = json.loads(payload)
    data[doc["ServerURL"]] = {{"Username": doc["Username"], "Secret": doc["Secret"]}}
    json.dump(data, open(db, "w"))
elif action == "erase":
    data.pop(payload.strip(), None)
    json.dump(data, open(db, "w"))
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return db


def test_cred_helpers_and_creds_store(auth_env: Path, cred_helper: Path) -> None:
    config = auth_env / ".docker/config.json"
    _write(config, {"credHelpers": {"helped.example": "ocibtest"}, "auths": {}})
    assert find_credentials("helped.example", "a") is None
    where = store_credentials("helped.example", Credentials("hu", "hp"))
    assert where == "docker-credential-ocibtest"
    assert "hp" not in config.read_text()  # the secret lives with the helper only
    assert find_credentials("helped.example", "a") == Credentials("hu", "hp")
    assert remove_credentials("helped.example")
    assert find_credentials("helped.example", "a") is None

    _write(config, {"credsStore": "ocibtest"})
    store_credentials("docker.io", Credentials(identity_token="idtok"))
    assert json.loads(cred_helper.read_text())["https://index.docker.io/v1/"] == \
        {"Username": "<token>", "Secret": "idtok"}
    assert find_credentials("docker.io", "library/alpine") == Credentials(identity_token="idtok")


def test_www_authenticate_parsing() -> None:
    header = ('Bearer realm="https://auth.example/token",service="reg",'
              'scope="repository:a/b:pull,push repository:c:pull", Basic realm="x"')
    found = parse_challenges(header)
    assert [c.scheme for c in found] == ["bearer", "basic"]
    assert found[0].realm == "https://auth.example/token" and found[0].service == "reg"
    assert found[0].scopes == ("repository:a/b:pull,push", "repository:c:pull")
    assert pick_challenge('Basic realm="registry"').scheme == "basic"  # type: ignore[union-attr]


def test_login_and_logout(htpasswd_registry: RegistryServer, images: BaseImages,
                          cli: Cli) -> None:
    ref = f"{htpasswd_registry.host}/auth/login:1"
    denied = cli("push", f"oci:{images.path}:latest", ref)
    assert denied.returncode != 0 and "401" in denied.stderr
    cli.ok("login", htpasswd_registry.host, "-u", USER, "--password-stdin",
           input=PASSWORD + "\n")
    saved = json.loads(cli.authfile.read_text())["auths"][htpasswd_registry.host]
    assert base64.b64decode(saved["auth"]).decode() == f"{USER}:{PASSWORD}"
    assert oct(cli.authfile.stat().st_mode & 0o777) == "0o600"
    cli.ok("push", f"oci:{images.path}:latest", ref)
    cli.ok("logout", htpasswd_registry.host)
    assert htpasswd_registry.host not in json.loads(cli.authfile.read_text())["auths"]
    assert cli("push", f"oci:{images.path}:latest", ref).returncode != 0


def test_tokens_per_scope_anonymous_pull_and_refresh_on_expiry(
        token_registry: RegistryServer, images: BaseImages, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A pull-scoped token is never reused for a push; anonymous clients get pull
    tokens; an expired token is fetched again."""
    from ocibuild.oci.layout import ImageLayout

    ts = token_registry.token_server
    assert ts is not None
    authfile = tmp_path / "auth.json"
    _write(authfile, {"auths": {token_registry.host: {"auth": _auth(USER, PASSWORD)}}})
    ref = parse_reference(f"{token_registry.host}/auth/tokens:1")
    clients = ClientPool(RegistryOptions(authfile=authfile))
    ts.issued.clear()
    push_image(images.layout, images.base, [ref], clients=clients)
    # even the HEAD checks ask for pull,push, so no pull-only token is ever offered for a push
    scopes = {s for rec in ts.issued for s in rec["scopes"]}
    assert scopes == {"repository:auth/tokens:pull,push"}
    assert len(ts.issued) == 1  # one token reused for every request of the push
    pull(ref, ImageLayout.init(tmp_path / "p1"), clients=clients)
    assert ts.issued[-1]["scopes"] == ["repository:auth/tokens:pull"]
    push_image(images.layout, images.base, [ref.with_tag("2")], clients=clients)
    assert len(ts.issued) == 2  # the push token is still valid and is reused

    anonymous = ClientPool(RegistryOptions(authfile=tmp_path / "none.json"))
    pull(ref, ImageLayout.init(tmp_path / "p2"), clients=anonymous)
    assert ts.issued[-1]["account"] == "" and ts.issued[-1]["granted"][0]["actions"] == ["pull"]

    monkeypatch.setattr(client_module, "TOKEN_MARGIN", ts.expires_in - 0.3)
    fresh = ClientPool(RegistryOptions(authfile=authfile))
    before = len(ts.issued)
    pull(ref, ImageLayout.init(tmp_path / "p3"), clients=fresh)
    import time

    time.sleep(1.1)  # tokens live at least a second
    pull(ref, ImageLayout.init(tmp_path / "p4"), clients=fresh)
    assert len(ts.issued) - before == 2
