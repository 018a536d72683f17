"""Image signatures that skopeo's sigstoreSigned policy checks: one image built, pushed
and signed by `ocibuild build --push --sign-key`, the same image pushed unsigned and
signed with another key; skopeo and `ocibuild verify` agree on each, and each verifies
what the other signed."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.signing.conftest import KEY_ENV, Builder, Keys, Skopeo, give_to
from tests.support.paths import OCIBUILD
from tests.support.registry_server import RegistryServer

SIGNED_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"


@dataclass(frozen=True)
class Pushed:
    host: str
    digest: str

    def ref(self, repository: str, tag: str = "1") -> str:
        return f"{self.host}/{repository}:{tag}"


@pytest.fixture(scope="module")
def pushed(package_builder: Builder, registry: RegistryServer, keys: Keys) -> Pushed:
    """signed/app:1 (built, pushed and signed with ours), plain/app:1 (unsigned),
    theirs/app:1 (signed with the other key): one image."""
    ctx = package_builder.tmp / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nCOPY hello.txt /hello.txt\n")
    (ctx / "hello.txt").write_text("signed hello\n")
    give_to(ctx, package_builder.user)
    host = registry.host
    proc, _ = package_builder.build(ctx, "-t", f"{host}/signed/app:1", "--push",
                                    "--sign-key", keys.private(), env=KEY_ENV)
    pushed_line = next(line for line in proc.stderr.splitlines() if line.startswith("pushed "))
    digest = pushed_line.rsplit("@", 1)[1]
    assert f"signed {host}/signed/app:1@{digest}" in proc.stderr
    user, root = package_builder.user, package_builder.root
    for repo in ("plain", "theirs"):
        push = user.run([OCIBUILD, "--root", root, "push", f"{host}/signed/app:1",
                         f"{host}/{repo}/app:1"])
        assert push.returncode == 0, push.stderr
    sign = user.run([OCIBUILD, "sign", f"{host}/theirs/app:1", "--key",
                     keys.private("theirs")], env=KEY_ENV)
    assert sign.returncode == 0, sign.stderr
    return Pushed(host, digest)


def _verify(builder: Builder, ref: str, public_key: Path) -> tuple[int, str]:
    proc = builder.user.run([OCIBUILD, "verify", ref, "--key", public_key])
    return proc.returncode, proc.stdout + proc.stderr


def _signatures(host: str, repository: str, digest: str) -> list[dict]:
    tag = digest.replace(":", "-") + ".sig"
    req = urllib.request.Request(f"http://{host}/v2/{repository}/manifests/{tag}", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["layers"]


def test_skopeo_and_verify_accept_our_signature_only(
        pushed: Pushed, skopeo: Skopeo, keys: Keys, package_builder: Builder) -> None:
    ours = keys.public()
    accepted = skopeo.pull(pushed.ref("signed/app"), ours)
    assert accepted.returncode == 0, accepted.stderr
    assert _verify(package_builder, pushed.ref("signed/app"), ours) == (
        0, f"verified {pushed.host}/signed/app@{pushed.digest}: signed by {ours} for "
           f"{pushed.ref('signed/app')}\n")

    unsigned = skopeo.pull(pushed.ref("plain/app"), ours)
    assert unsigned.returncode != 0 and "no signature exists" in unsigned.stderr
    code, said = _verify(package_builder, pushed.ref("plain/app"), ours)
    assert code == 1 and said.endswith("has no signature\n"), said

    other = skopeo.pull(pushed.ref("theirs/app"), ours)
    assert other.returncode != 0
    assert "cryptographic signature verification failed" in other.stderr
    code, said = _verify(package_builder, pushed.ref("theirs/app"), ours)
    assert code == 1 and f"does not verify with the key {ours}" in said, said
    assert skopeo.pull(pushed.ref("theirs/app"), keys.public("theirs")).returncode == 0


def test_a_signature_names_its_tag(pushed: Pushed, skopeo: Skopeo, keys: Keys,
                                   package_builder: Builder) -> None:
    """The same manifest under another tag: its signature (made for :1) does not vouch
    for :2, for skopeo's default signedIdentity as for ocibuild."""
    push = package_builder.user.run([OCIBUILD, "--root", package_builder.root, "push",
                                     pushed.ref("signed/app"), pushed.ref("signed/app", "2")])
    assert push.returncode == 0, push.stderr
    refused = skopeo.pull(pushed.ref("signed/app", "2"), keys.public())
    assert refused.returncode != 0 and "is not accepted" in refused.stderr, refused.stderr
    code, said = _verify(package_builder, pushed.ref("signed/app", "2"), keys.public())
    assert code == 1 and f"signed for {pushed.ref('signed/app')}, not " \
        f"{pushed.ref('signed/app', '2')}" in said, said
    by_digest = f"{pushed.host}/signed/app@{pushed.digest}"
    assert _verify(package_builder, by_digest, keys.public())[0] == 0


def test_skopeo_signs_what_ocibuild_verifies_and_signing_again_appends(
        pushed: Pushed, skopeo: Skopeo, keys: Keys, package_builder: Builder,
        package_tmp: Path) -> None:
    passphrase = package_tmp / "passphrase"
    passphrase.write_text(KEY_ENV["OCIBUILD_KEY_PASSWORD"])
    signed = skopeo("--policy", skopeo.policy(None), "copy", "--quiet",
                    "--src-tls-verify=false", "--dest-tls-verify=false",
                    "--sign-by-sigstore-private-key", keys.private(),
                    "--sign-passphrase-file", passphrase,
                    f"docker://{pushed.ref('plain/app')}", f"docker://{pushed.ref('skopeo/app')}")
    assert signed.returncode == 0, signed.stderr
    assert _verify(package_builder, pushed.ref("skopeo/app"), keys.public())[0] == 0
    assert _verify(package_builder, pushed.ref("skopeo/app"), keys.public("theirs"))[0] == 1

    # ocibuild adds its signature to skopeo's: both stay, and both verify
    again = package_builder.user.run([OCIBUILD, "sign", pushed.ref("skopeo/app"), "--key",
                                      keys.private("theirs")], env=KEY_ENV)
    assert again.returncode == 0, again.stderr
    layers = _signatures(pushed.host, "skopeo/app", pushed.digest)
    assert [layer["mediaType"] for layer in layers] == [SIGNED_TYPE, SIGNED_TYPE]
    for name in ("ours", "theirs"):
        assert skopeo.pull(pushed.ref("skopeo/app"), keys.public(name)).returncode == 0
        assert _verify(package_builder, pushed.ref("skopeo/app"), keys.public(name))[0] == 0


def test_a_key_that_cannot_sign_stops_the_build_before_any_step(
        package_builder: Builder, registry: RegistryServer, keys: Keys) -> None:
    ctx = package_builder.tmp / "unsigned-ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nRUN echo never > /never\n")
    give_to(ctx, package_builder.user)
    target = f"{registry.host}/never/app:1"
    cases = [
        ({"OCIBUILD_KEY_PASSWORD": "guess"}, ["--push"], "wrong passphrase"),
        ({}, ["--push"], "no terminal to ask on; set $OCIBUILD_KEY_PASSWORD or "
                         "$COSIGN_PASSWORD"),
        (KEY_ENV, [], "--sign-key signs the pushed image: add --push"),
    ]
    for env, push, message in cases:
        proc, _ = package_builder.build(ctx, "-t", target, *push, "--sign-key",
                                        keys.private(), env=env, check=False)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
        assert "RUN echo never" not in proc.stderr
