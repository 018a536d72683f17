"""Signing keys in cosign's file format, which containers/image reads too.

- `NAME.pub`: the public key, PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
- `NAME.key`: the private key (PKCS#8 DER) sealed under a passphrase, PEM whose body
  is JSON: `{"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1},
  "salt": B64}, "cipher": {"name": "nacl/secretbox", "nonce": B64}, "ciphertext":
  B64}`. The box key is scrypt(passphrase, salt) (32 bytes); the ciphertext is NaCl's
  secretbox (XSalsa20-Poly1305, its 16-byte tag first).

The PEM type written is `ENCRYPTED COSIGN PRIVATE KEY`: containers/image up to 5.2x
(Debian 12's skopeo 1.9 and podman 4.3) reads only that one; newer cosign writes
`ENCRYPTED SIGSTORE PRIVATE KEY`, which is read too. The scrypt parameters are fixed,
as the reference implementation checks them: a key file cannot make us spend
unbounded memory. `cryptography` has scrypt but not XSalsa20, hence PyNaCl.

Only ECDSA P-256 keys are made and accepted: what cosign makes by default and
containers/image verifies with SHA-256.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.errors import OcibuildError, UsageError, os_error

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import (
        EllipticCurvePrivateKey,
        EllipticCurvePublicKey,
    )

WRITTEN_PEM_TYPE = "ENCRYPTED COSIGN PRIVATE KEY"
READ_PEM_TYPES = (WRITTEN_PEM_TYPE, "ENCRYPTED SIGSTORE PRIVATE KEY")
PUBLIC_PEM_TYPE = "PUBLIC KEY"
PASSWORD_ENVS = ("OCIBUILD_KEY_PASSWORD", "COSIGN_PASSWORD")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1
SALT_SIZE = 32
BOX_KEY_SIZE = 32
MAX_KEY_FILE = 64 << 10


class KeyFileError(OcibuildError):
    """A key file that cannot be read, decrypted or used."""


@dataclass(frozen=True)
class PublicKey:
    """A public key to verify with; `path` names it in messages."""

    key: EllipticCurvePublicKey
    path: str

    def verifies(self, signature: bytes, payload: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            self.key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """A decrypted private key; `path` names it in messages."""

    key: EllipticCurvePrivateKey
    path: str

    def sign(self, payload: bytes) -> bytes:
        """An ASN.1 DER ECDSA signature of SHA-256(payload)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        return self.key.sign(payload, ec.ECDSA(hashes.SHA256()))

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key(), self.path)


def passphrase_from_env() -> bytes | None:
    """$OCIBUILD_KEY_PASSWORD, else $COSIGN_PASSWORD (an empty one counts), else None."""
    for name in PASSWORD_ENVS:
        value = os.environ.get(name)
        if value is not None:
            return value.encode()
    return None


_typed: list[bytes] = []  # what was typed at the terminal: asked once per command


def ask_passphrase(prompt: str, *, confirm: bool = False) -> bytes:
    """The passphrase from the environment, else typed on the terminal (once per
    process: every key a command reads takes the same passphrase, as with cosign's
    $COSIGN_PASSWORD)."""
    found = passphrase_from_env()
    if found is not None:
        return found
    if _typed and not confirm:
        return _typed[0]
    import getpass
    import sys

    if not sys.stdin.isatty():
        raise UsageError(f"{prompt}: no terminal to ask on; set "
                         f"{' or '.join('$' + n for n in PASSWORD_ENVS)}")
    first = getpass.getpass(f"{prompt}: ")
    if confirm and getpass.getpass(f"{prompt} (again): ") != first:
        raise UsageError("the passphrases differ")
    _typed[:] = [first.encode()]
    return _typed[0]


def _scrypt_key(passphrase: bytes, salt: bytes) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=BOX_KEY_SIZE, n=SCRYPT_N, r=SCRYPT_R,
                  p=SCRYPT_P).derive(passphrase)


def _pem(kind: str, body: bytes) -> bytes:
    text = base64.b64encode(body).decode("ascii")
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return (f"-----BEGIN {kind}-----\n" + "\n".join(lines)
            + f"\n-----END {kind}-----\n").encode("ascii")


def _unpem(data: bytes, kinds: tuple[str, ...], where: str) -> bytes:
    """The body of the first PEM block, which must be of one of `kinds`."""
    text = data.decode("ascii", "replace")
    begin = text.find("-----BEGIN ")
    close = text.find("-----", begin + 11)
    if begin < 0 or close < 0:
        raise KeyFileError(f"{where}: not a PEM file")
    kind = text[begin + 11:close]
    end = text.find(f"-----END {kind}-----", begin)
    if kind not in kinds or end < 0:
        raise KeyFileError(f"{where}: a PEM {kind!r} block, not {' or '.join(kinds)}")
    body = text[begin + len(f"-----BEGIN {kind}-----"):end]
    try:
        return base64.b64decode("".join(body.split()), validate=True)
    except binascii.Error:
        raise KeyFileError(f"{where}: the PEM block is not valid base64") from None


def seal(private_der: bytes, passphrase: bytes) -> bytes:
    """The encrypted private key file's bytes for a PKCS#8 DER key."""
    import nacl.secret
    import nacl.utils

    salt = os.urandom(SALT_SIZE)
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    box = nacl.secret.SecretBox(_scrypt_key(passphrase, salt))
    sealed = box.encrypt(private_der, nonce).ciphertext
    doc = {"kdf": {"name": "scrypt", "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
                   "salt": base64.b64encode(salt).decode()},
           "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
           "ciphertext": base64.b64encode(sealed).decode()}
    return _pem(WRITTEN_PEM_TYPE, json.dumps(doc, separators=(",", ":")).encode())


def unseal(data: bytes, passphrase: bytes, where: str) -> bytes:
    """The PKCS#8 DER key inside an encrypted private key file."""
    import nacl.exceptions
    import nacl.secret

    body = _unpem(data, READ_PEM_TYPES, where)
    try:
        doc = json.loads(body)
        kdf, cipher = doc["kdf"], doc["cipher"]
        if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
            raise KeyFileError(f"{where}: sealed with {kdf['name']}/{cipher['name']}, not "
                            "scrypt/nacl/secretbox")
        params = kdf["params"]
        if (params["N"], params["r"], params["p"]) != (SCRYPT_N, SCRYPT_R, SCRYPT_P):
            raise KeyFileError(f"{where}: unexpected scrypt parameters {params}")
        salt, nonce = base64.b64decode(kdf["salt"]), base64.b64decode(cipher["nonce"])
        sealed = base64.b64decode(doc["ciphertext"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise KeyFileError(f"{where}: not an encrypted cosign private key") from None
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise KeyFileError(f"{where}: the nonce is not {nacl.secret.SecretBox.NONCE_SIZE} bytes")
    try:
        return nacl.secret.SecretBox(_scrypt_key(passphrase, salt)).decrypt(sealed, nonce)
    except nacl.exceptions.CryptoError:
        raise KeyFileError(f"{where}: wrong passphrase (or a damaged key file)") from None


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise os_error(exc, f"cannot read the {what}") from None
    if len(data) > MAX_KEY_FILE:
        raise KeyFileError(f"{path}: too large for a {what}")
    return data


def generate(prefix: str | os.PathLike[str], passphrase: bytes) -> tuple[Path, Path]:
    """Make a P-256 key pair: PREFIX.key (sealed) and PREFIX.pub; neither may exist."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private_path, public_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    for path in (private_path, public_path):
        if path.exists():
            raise UsageError(f"{path} exists; remove it or choose another --output")
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(seal(der, passphrase))
        public_path.write_bytes(public)
    except OSError as exc:
        raise os_error(exc, "cannot write the key") from None
    return private_path, public_path


def load_signing_key(path: str | os.PathLike[str], passphrase: bytes) -> SigningKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    where = str(path)
    der = unseal(_read(path, "private key"), passphrase, where)
    try:
        key = serialization.load_der_private_key(der, password=None)
    except ValueError:
        raise KeyFileError(f"{where}: the sealed key is not a PKCS#8 private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise KeyFileError(f"{where}: not an ECDSA P-256 key")
    return SigningKey(key, where)


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    where = str(path)
    der = _unpem(_read(path, "public key"), (PUBLIC_PEM_TYPE,), where)
    try:
        key = serialization.load_der_public_key(der)
    except ValueError:
        raise KeyFileError(f"{where}: not a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise KeyFileError(f"{where}: not an ECDSA P-256 public key")
    return PublicKey(key, where)
