"""`build --sign-key`: sign every reference a build pushed.

The key is read (and its passphrase asked for) before the build starts, so that a
wrong passphrase costs nothing; the signing happens after the push, once per name
pushed (`name:tag`), each a layer of the same `.sig` manifest when they share a
repository.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ocibuild.errors import UsageError

if TYPE_CHECKING:
    from ocibuild.registry.options import RegistryOptions
    from ocibuild.signing.keys import SigningKey


def load_build_key(path: str | os.PathLike[str] | None, pushes: bool) -> SigningKey | None:
    """The --sign-key, decrypted; None without one. A key with nothing pushed to sign is
    a usage error."""
    if path is None:
        return None
    if not pushes:
        raise UsageError("--sign-key signs the pushed image: add --push (or an output "
                         "with push=true)")
    from ocibuild.signing import keys

    return keys.load_signing_key(path, keys.ask_passphrase(f"passphrase for {path}"))


def sign_pushed(pushed: Sequence[str], key: SigningKey | None,
                registry: RegistryOptions | None) -> tuple[str, ...]:
    """Sign each `name:tag@digest` the push reported; return them as signed."""
    if key is None or not pushed:
        return ()
    from ocibuild.reference import parse_reference
    from ocibuild.registry.client import ClientPool
    from ocibuild.signing.images import sign_manifest

    clients = ClientPool(registry)
    signed = []
    try:
        for text in pushed:
            ref = parse_reference(text)
            sign_manifest(clients.get(ref.registry), ref, key,
                          f"--sign-key: sign {ref}", digest=ref.digest)
            signed.append(text)
    finally:
        clients.close()
    return tuple(signed)
