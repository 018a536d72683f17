"""A `--secret` of a build: where its bytes are. They are read only when a step mounts
the secret or a git source authenticates with it; the solve's options hold where, never
the bytes."""

from __future__ import annotations

import os
from pathlib import Path

from ocibuild.deferred import deferred_dataclass


@deferred_dataclass(frozen=True)
class SecretSource:
    """A --secret: read from a file or an environment variable when a step mounts it."""

    id: str
    path: Path | None = None
    env: str = ""

    def data(self) -> bytes | None:
        if self.path is not None:
            return self.path.read_bytes()
        value = os.environ.get(self.env or self.id)
        return None if value is None else value.encode()
