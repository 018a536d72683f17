from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO, VENV_BIN
from tests.support.users import NOSUB_USER, SUB_USER, User, remove_tree

ROOT_USER = User("root", 0, 0, Path("/root"))
DRIVER = [str(VENV_BIN / "python"), "-m", "tests.sandbox.driver"]


@dataclass
class Sandboxer:
    """Runs sandbox steps as one of the test users (or root) through tests/sandbox/driver."""

    user: User
    tmp: Path
    busybox: Path

    @property
    def full_ids(self) -> bool:
        """Whether ids other than 0 are mapped (subordinate ranges, or real root)."""
        return self.user.name != NOSUB_USER

    def path(self, name: str) -> Path:
        """A directory owned by the user inside its temp dir."""
        p = self.tmp / name
        p.mkdir()
        os.chown(p, self.user.uid, self.user.gid)
        return p

    def rootfs(self, name: str = "rootfs") -> Path:
        """A writable copy of the busybox root filesystem, owned by the user (its root
        inside the sandbox)."""
        dest = self.tmp / name
        shutil.copytree(self.busybox, dest, symlinks=True)
        subprocess.run(["chown", "-R", "-h", f"{self.user.uid}:{self.user.gid}", str(dest)],
                       check=True)
        return dest

    def run(self, *steps: dict[str, Any], timeout: float = 60,
            parallel: bool = False) -> list[dict[str, Any]]:
        request = {"steps": list(steps), "parallel": parallel}
        done = self.user.run(DRIVER, input=json.dumps(request), cwd=REPO, timeout=timeout)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    def run_one(self, step: dict[str, Any]) -> dict[str, Any]:
        return self.run(step)[0]

    def popen(self, *steps: dict[str, Any]) -> subprocess.Popen[str]:
        proc = self.user.popen(DRIVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=REPO)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"steps": list(steps), "stream": True}))
        proc.stdin.close()
        return proc


@pytest.fixture(params=[SUB_USER, NOSUB_USER, "root"])
def sbx(request: pytest.FixtureRequest, busybox_rootfs: Path) -> Iterator[Sandboxer]:
    if os.geteuid() != 0:
        pytest.fail("the suite runs as root; it drops to the test users itself")
    user = ROOT_USER if request.param == "root" else User.lookup(request.param)
    tmp = Path(tempfile.mkdtemp(prefix="ocib-sandbox-test-", dir="/tmp"))
    os.chmod(tmp, 0o755)
    os.chown(tmp, user.uid, user.gid)
    os.chmod(busybox_rootfs.parent, 0o755)
    yield Sandboxer(user, tmp, busybox_rootfs)
    remove_tree(tmp)


def stdout_text(record: dict[str, Any]) -> str:
    return "".join(text for _, text in record["stdout"])


def stderr_text(record: dict[str, Any]) -> str:
    return "".join(text for _, text in record["stderr"])


def processes_with_args(*args: str) -> list[int]:
    """PIDs (host view) whose command line is exactly `args`."""
    wanted = "\0".join(args).encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read() == wanted:
                        found.append(int(entry))
            except OSError:
                pass
    return found
