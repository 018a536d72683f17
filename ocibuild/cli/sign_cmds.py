"""`ocibuild key generate`, `ocibuild sign` and `ocibuild verify`: cosign-format image
signatures that skopeo and podman verify (see docs/supply-chain.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ocibuild.cli.registry_flags import registry_connection_options
from ocibuild.signing.keys import PASSWORD_ENVS

if TYPE_CHECKING:
    from ocibuild.reference import Reference
    from ocibuild.registry.client import RegistryClient

_PASSWORD_HELP = (f"The passphrase comes from ${PASSWORD_ENVS[0]} (or ${PASSWORD_ENVS[1]}), "
                  "else it is asked on the terminal.")


@click.group("key")
def key_group() -> None:
    """Signing keys (cosign's format)."""


@key_group.command("generate", help=(
    "Make an ECDSA P-256 key pair for `sign`, `build --sign-key`, skopeo and podman: "
    "PREFIX.pub, and PREFIX.key sealed with a passphrase (scrypt and NaCl secretbox, as "
    "cosign seals it). " + _PASSWORD_HELP))
@click.option("--output", "-o", "prefix", required=True, metavar="PREFIX",
              help="Write PREFIX.key (the private key, encrypted) and PREFIX.pub.")
def generate_cmd(prefix: str) -> None:
    from ocibuild.signing import keys

    passphrase = keys.ask_passphrase("passphrase for the new key", confirm=True)
    private, public = keys.generate(prefix, passphrase)
    click.echo(f"wrote {private} (private, keep it secret) and {public} (public)", err=True)


def _client(ref_text: str, insecure: tuple[str, ...], registry_ca: tuple[str, ...],
            authfile: str | None) -> tuple[Reference, RegistryClient]:
    from ocibuild.registry import RegistryClient, RegistryOptions, parse_reference

    ref = parse_reference(ref_text)
    options = RegistryOptions.build(insecure=insecure, ca_files=registry_ca, authfile=authfile)
    return ref, RegistryClient(ref.registry, options)


@click.command("sign", help=(
    "Sign the image REFERENCE names in its registry: the signature goes to the tag "
    "sha256-HEX.sig beside it, after any already there. " + _PASSWORD_HELP))
@click.argument("reference")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="The private key (from `ocibuild key generate` or cosign).")
@registry_connection_options
def sign_cmd(reference: str, key_path: str, insecure: tuple[str, ...],
             registry_ca: tuple[str, ...], authfile: str | None) -> None:
    from ocibuild.signing import keys
    from ocibuild.signing.images import sign_manifest

    key = keys.load_signing_key(key_path, keys.ask_passphrase(f"passphrase for {key_path}"))
    ref, client = _client(reference, insecure, registry_ca, authfile)
    try:
        signed = sign_manifest(client, ref, key, f"sign {ref}")
    finally:
        client.close()
    state = "signed" if signed.added else "already signed with this signature:"
    click.echo(f"{state} {ref.name}@{signed.manifest_digest} as {signed.identity}", err=True)


@click.command("verify", help=(
    "Check that the image REFERENCE names carries a signature made with the key, for "
    "that manifest and that name, as a skopeo or podman sigstoreSigned policy checks "
    "it. Exits 1 when none does."))
@click.argument("reference")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="The public key (PEM) a signature must verify with.")
@registry_connection_options
def verify_cmd(reference: str, key_path: str, insecure: tuple[str, ...],
               registry_ca: tuple[str, ...], authfile: str | None) -> None:
    from ocibuild.signing import keys
    from ocibuild.signing.images import verify_manifest

    key = keys.load_public_key(key_path)
    ref, client = _client(reference, insecure, registry_ca, authfile)
    try:
        found = verify_manifest(client, ref, key, f"verify {ref}")
    finally:
        client.close()
    click.echo(f"verified {ref.name}@{found.manifest_digest}: signed by {key_path} "
               f"for {found.identity}")
