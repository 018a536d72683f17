"""Run commands as the unprivileged test users that scripts/test-users.sh creates."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.paths import VENV_BIN

SUB_USER = "ocib-sub"  # has /etc/subuid and /etc/subgid ranges
NOSUB_USER = "ocib-nosub"  # has none: only its own id maps


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: Path

    @classmethod
    def lookup(cls, name: str) -> User:
        pw = pwd.getpwnam(name)
        return cls(name, pw.pw_uid, pw.pw_gid, Path(pw.pw_dir))

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8",
        }
        for key in ("SOURCE_DATE_EPOCH",):
            if key in os.environ:
                env[key] = os.environ[key]
        env.update(extra or {})
        return env

    def run(self, cmd: Sequence[str | os.PathLike[str]], *, env: dict[str, str] | None = None,
            check: bool = False, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run `cmd` as this user (the tests run as root; this drops to the user)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 300)
        return subprocess.run(
            [str(c) for c in cmd], user=self.uid, group=self.gid, extra_groups=[],
            env=self.env(env), check=check, **kwargs,
        )

    def popen(self, cmd: Sequence[str | os.PathLike[str]], *, env: dict[str, str] | None = None,
              **kwargs: Any) -> subprocess.Popen[str]:
        kwargs.setdefault("text", True)
        return subprocess.Popen(
            [str(c) for c in cmd], user=self.uid, group=self.gid, extra_groups=[],
            env=self.env(env), **kwargs,
        )

    def make_tempdir(self, prefix: str = "ocib-test-") -> Path:
        """A fresh directory owned by this user (removed by the caller's fixture)."""
        path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        os.chmod(path, 0o755)
        os.chown(path, self.uid, self.gid)
        return path


def remove_tree(path: Path) -> None:
    """Remove a tree a test user (or its subordinate ids) wrote, as root."""
    if not path.exists():
        return
    for p in [path, *path.rglob("*")]:
        try:
            if not p.is_symlink():
                os.chmod(p, 0o700 if p.is_dir() else 0o600)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)
