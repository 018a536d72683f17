"""What a build step is (StepSpec and its mounts) and what running it gave (StepResult)."""

from __future__ import annotations

import signal as _signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ocibuild.deferred import deferred_dataclass
from ocibuild.idspace.requests import RootFS

Network = Literal["default", "none", "host"]
Isolation = Literal["userns", "chroot"]
Security = Literal["sandbox", "insecure"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SSH_TARGET = "/run/buildkit/ssh_agent.0"
# the limits Docker's --ulimit knows, and their RLIMIT_* numbers on Linux
ULIMITS = {"cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6,
           "nofile": 7, "memlock": 8, "locks": 10, "sigpending": 11, "msgqueue": 12,
           "nice": 13, "rtprio": 14, "rttime": 15}


@deferred_dataclass(frozen=True)
class BindMount:
    """A host file or directory at `target` (read-only unless `readonly=False`)."""

    source: Path
    target: str
    readonly: bool = True


@deferred_dataclass(frozen=True)
class TmpfsMount:
    """A tmpfs a step's sandbox mounts: where, its size and its mode."""
    target: str
    size: int | None = None  # bytes; None: the kernel's default (half the memory)
    mode: int = 0o1777


@deferred_dataclass(frozen=True)
class SecretMount:
    """A read-only file at `target` holding `data` or a copy of the host file `source`.

    It lives on a tmpfs of the step's own mount namespace: its bytes never reach the
    root filesystem, and the empty mount point made for it is removed after the step.
    """

    target: str
    source: Path | None = None
    data: bytes | None = None
    mode: int = 0o400
    uid: int = 0
    gid: int = 0


@deferred_dataclass(frozen=True)
class CacheMount:
    """A persistent host directory at `target`, writable (sharing is the caller's job)."""

    source: Path
    target: str


@deferred_dataclass(frozen=True)
class SSHMount:
    """An SSH agent socket at `target`; SSH_AUTH_SOCK points at it unless already set."""

    socket: Path
    target: str = DEFAULT_SSH_TARGET


Mount = BindMount | TmpfsMount | SecretMount | CacheMount | SSHMount


@dataclass(frozen=True)
class StepSpec:
    """One command to run in a root filesystem.

    `user` is "" (root), a name, a uid, or user:group with names or numbers, resolved
    against the root filesystem's /etc/passwd and /etc/group. `env` is the whole
    environment (PATH gets a default when absent, HOME comes from /etc/passwd).
    `network`: "default" and "host" share the host network; "none" has only loopback.
    `security`: "sandbox" (the default) runs the step with Docker's default capabilities,
    no_new_privs and a seccomp filter; "insecure" (RUN --security=insecure, which the
    caller allows only with the security.insecure entitlement) keeps the full set.
    `extra_hosts`: (host, ip) lines appended to the step's /etc/hosts (--add-host).
    `shm_size`: the size of /dev/shm in bytes (None: 64 MiB, as in Docker).
    `ulimits`: (name, soft, hard) resource limits set before the exec, a name of
    ULIMITS, -1 for unlimited (--ulimit).
    """

    rootfs: Path | RootFS  # a RootFS: a plain directory or an overlay with an upper
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = "/"
    user: str = ""
    mounts: Sequence[Mount] = ()
    network: Network = "default"
    hostname: str = "ocibuild"
    security: Security = "sandbox"
    extra_hosts: Sequence[tuple[str, str]] = ()
    shm_size: int | None = None
    ulimits: Sequence[tuple[str, int, int]] = ()


def step_options_config(spec: StepSpec) -> dict[str, object]:
    """The step's extra hosts, /dev/shm size and limits as the sandbox process takes
    them, checked: nothing of them can add a line to /etc/hosts or name an unknown
    limit."""
    from ocibuild.sandbox.errors import SandboxError

    for host, ip in spec.extra_hosts:
        if not host or not ip or any(c.isspace() or c == "#" for c in host + ip):
            raise SandboxError(f"invalid extra host {host!r} {ip!r}")
    if spec.shm_size is not None and spec.shm_size <= 0:
        raise SandboxError(f"the size of /dev/shm must be positive: {spec.shm_size}")
    limits = []
    for name, soft, hard in spec.ulimits:
        if name not in ULIMITS:
            raise SandboxError(f"unknown resource limit {name!r}")
        if min(soft, hard) < -1 or (hard != -1 and not -1 < soft <= hard):
            raise SandboxError(f"invalid {name} limit: soft {soft}, hard {hard}")
        limits.append([name, ULIMITS[name], soft, hard])
    return {"extra_hosts": [list(h) for h in spec.extra_hosts],
            "shm_size": spec.shm_size, "ulimits": limits}


@dataclass(frozen=True)
class StepResult:
    """How a step ended: `exit_code` when it exited, `signal` when a signal killed it."""

    exit_code: int | None
    signal: int | None = None
    cancelled: bool = False
    hint: str = ""  # why it may have failed, for people (e.g. an unmapped uid)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def description(self) -> str:
        if self.cancelled:
            text = "cancelled"
        elif self.signal is not None:
            try:
                name = _signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            text = f"killed by signal {self.signal} ({name})"
        elif self.exit_code == 127:
            text = "exited with status 127 (command not found)"
        elif self.exit_code == 126:
            text = "exited with status 126 (command not executable)"
        else:
            text = f"exited with status {self.exit_code}"
        return f"{text}; {self.hint}" if self.hint else text
