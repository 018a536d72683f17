"""Key files and payloads on their own (no registry): what a user sees for a wrong
passphrase, a tampered key file or payload, and cache options that cannot work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocibuild.cache.remote.spec import parse_cache_spec
from ocibuild.errors import UsageError
from ocibuild.reference import parse_reference
from ocibuild.signing import keys
from ocibuild.signing.attachments import Signature
from ocibuild.signing.payload import PayloadError, make_payload, parse_payload
from ocibuild.signing.verify import SignatureError, check_signatures

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return keys.generate(tmp_path_factory.mktemp("keys") / "k", b"pass")


def test_a_wrong_passphrase_or_a_tampered_key_file_is_one_message(pair: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    private, _ = pair
    with pytest.raises(keys.KeyFileError, match="wrong passphrase"):
        keys.load_signing_key(private, b"guess")
    # the KDF's cost is fixed: a key file cannot ask for gigabytes of scrypt memory
    body = keys._unpem(private.read_bytes(), keys.READ_PEM_TYPES, "k")
    doc = json.loads(body)
    doc["kdf"]["params"]["N"] = 1 << 30
    costly = tmp_path / "costly.key"
    costly.write_bytes(keys._pem(keys.WRITTEN_PEM_TYPE, json.dumps(doc).encode()))
    with pytest.raises(keys.KeyFileError, match="unexpected scrypt parameters"):
        keys.load_signing_key(costly, b"pass")
    # newer cosign names the same format ENCRYPTED SIGSTORE PRIVATE KEY
    renamed = tmp_path / "cosign2.key"
    renamed.write_bytes(keys._pem("ENCRYPTED SIGSTORE PRIVATE KEY", body))
    assert keys.load_signing_key(renamed, b"pass").public.key.public_numbers() == \
        keys.load_public_key(pair[1]).key.public_numbers()
    with pytest.raises(UsageError, match="exists"):
        keys.generate(private.with_suffix(""), b"pass")


def test_payload_is_read_strictly() -> None:
    payload = make_payload(DIGEST, "example.com/app:1")
    assert payload == (b'{"critical":{"identity":{"docker-reference":"example.com/app:1"},'
                       b'"image":{"docker-manifest-digest":"' + DIGEST.encode()
                       + b'"},"type":"cosign container image signature"},"optional":null}')
    assert parse_payload(payload).manifest_digest == DIGEST
    twice = payload.replace(b'"optional":null', b'"optional":null,"optional":{}')
    extra = payload.replace(b'"type":', b'"extra":1,"type":')
    for bad in (twice, extra, b"[]", payload.replace(b"cosign container", b"other")):
        with pytest.raises(PayloadError):
            parse_payload(bad)


def test_only_a_signature_by_the_key_for_this_digest_and_name_counts(
        pair: tuple[Path, Path]) -> None:
    key = keys.load_signing_key(pair[0], b"pass")
    ref = parse_reference("example.com/app:1")

    def signed(digest: str, name: str) -> Signature:
        payload = make_payload(digest, name)
        return Signature(payload, key.sign(payload))

    good = signed(DIGEST, "example.com/app:1")
    assert check_signatures([good], key.public, DIGEST, ref).docker_reference == str(ref)
    forged = Signature(make_payload(DIGEST, "example.com/app:2"), good.signature)
    cases = {
        "has no signature": [],
        "does not verify with the key": [forged],
        "signed for another manifest": [signed(OTHER, "example.com/app:1")],
        "signed for example.com/app:2, not example.com/app:1": [signed(DIGEST,
                                                                       "example.com/app:2")],
    }
    for message, signatures in cases.items():
        with pytest.raises(SignatureError, match=message):
            check_signatures(signatures, key.public, DIGEST, ref)
    # by digest, any tag of the repository will do (matchRepoDigestOrExact)
    by_digest = parse_reference(f"example.com/app@{DIGEST}")
    assert check_signatures([forged, signed(DIGEST, "example.com/app:2")], key.public,
                            DIGEST, by_digest)


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--cache-to", "type=local,dest=d,sign-key=k.key", "needs a key file and type=registry"),
    ("--cache-from", "type=registry,ref=r/c,verify-key=", "needs a key file"),
    ("--cache-from", "type=registry,ref=r/c,sign-key=k.key", "sign-key= belongs to --cache-to"),
])
def test_cache_key_options_that_cannot_work_are_usage_errors(flag: str, value: str,
                                                             message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_cache_spec(value, export=flag == "--cache-to")
