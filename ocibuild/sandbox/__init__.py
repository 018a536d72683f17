"""Run build steps in rootless sandboxes (user namespaces) or, as root, chroot.

The public surface is what this module exports. Names load lazily so that the sandbox
helper process, which imports modules of this package, starts fast.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the helper ~15 ms
if TYPE_CHECKING:
    from typing import Any

    from ocibuild.sandbox.errors import SandboxError
    from ocibuild.sandbox.idmapping import current_idmap
    from ocibuild.sandbox.runner import run_step
    from ocibuild.sandbox.spec import (
        BindMount,
        CacheMount,
        Isolation,
        Mount,
        Network,
        RootFS,
        SecretMount,
        Security,
        SSHMount,
        StepResult,
        StepSpec,
        TmpfsMount,
    )
    from ocibuild.sandbox.userns_call import run_in_userns
    from ocibuild.sandbox.zygote_client import prestart

_EXPORTS = {
    "SandboxError": "errors",
    "current_idmap": "idmapping",
    "prestart": "zygote_client",
    "run_step": "runner",
    "run_in_userns": "userns_call",
    **{name: "spec" for name in ("BindMount", "CacheMount", "Isolation", "Mount", "Network",
                                 "RootFS", "SecretMount", "Security", "SSHMount",
                                 "StepResult", "StepSpec", "TmpfsMount")},
}

__all__ = [
    "BindMount", "CacheMount", "Isolation", "Mount", "Network", "RootFS", "SSHMount",
    "SandboxError", "SecretMount", "Security", "StepResult", "StepSpec", "TmpfsMount",
    "current_idmap", "prestart", "run_in_userns", "run_step",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module  # here: the helper process never needs it

    return getattr(import_module(f"ocibuild.sandbox.{module}"), name)
