"""Image signatures in the format containers/image (skopeo, podman) and cosign verify.

A signature is ECDSA P-256 (SHA-256, ASN.1 DER) over a small JSON document, the
"simple signing" payload, which names the manifest digest and the reference it was
signed for (`payload.py`). It is stored beside the image in the same repository, as
cosign stores it: the tag `sha256-<hex of the manifest digest>.sig` holds an OCI
manifest whose layers are payloads, each with its signature in the annotation
`dev.cosignproject.cosign/signature` (`attachments.py`). Signing again appends a
layer; a reader accepts the image when one layer verifies.

Keys are cosign's files (`keys.py`): a PEM public key, and a PKCS#8 private key sealed
with scrypt and NaCl secretbox under a passphrase, so that `skopeo copy
--sign-by-sigstore-private-key` signs with a key `ocibuild key generate` made, and a
policy.json `keyPath` verifies what either signed.

The same signatures protect `--cache-to` manifests (`cache/remote/`): a cache is a
manifest whose digest covers its config (the records) and every layer, so one
signature over that digest covers all a build would take from it.

This package sits above `registry/` (it talks to registries through its client) and
below the CLI, the builder and `cache/remote/`.
"""
