from __future__ import annotations

from ocibuild.errors import OcibuildError


class SandboxError(OcibuildError):
    """A step could not be started or set up (not: the step's command failed)."""
