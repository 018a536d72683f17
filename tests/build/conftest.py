"""End-to-end build set-up: a store holding busybox:latest for the unprivileged user."""

from __future__ import annotations

import compileall
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import FIXTURES, OCIBUILD, REPO
from tests.support.users import User, remove_tree


@pytest.fixture(scope="session", autouse=True)
def _compiled_package() -> None:
    """Byte-compile ocibuild as an installed package would be: the unprivileged builder
    cannot write __pycache__ in the tree, and would otherwise compile on every start."""
    compileall.compile_dir(REPO / "ocibuild", quiet=1)


@pytest.fixture(scope="session")
def busybox_store_template(busybox_rootfs: Path) -> Iterator[Path]:
    """A store root with busybox:latest imported (made once; copied per test)."""
    base = Path(tempfile.mkdtemp(prefix="ocib-bbstore-", dir="/tmp"))
    os.chmod(base, 0o755)
    root = base / "store"
    subprocess.run([OCIBUILD, "--root", root, "import", busybox_rootfs, "--tag",
                    "busybox:latest"], check=True, capture_output=True)
    yield root
    remove_tree(base)


@dataclass
class Builder:
    """Runs `ocibuild build` as the unprivileged user against its own store root."""

    user: User
    tmp: Path
    root: Path

    def build(self, *args: str | Path, check: bool = True, env: dict[str, str] | None = None,
              store: Path | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
        start = time.monotonic()
        proc = self.user.run([OCIBUILD, "--root", store or self.root, "build",
                              "--progress", "plain", *args], env=env, cwd=self.tmp)
        elapsed = time.monotonic() - start
        if check and proc.returncode != 0:
            raise AssertionError(f"build failed ({proc.returncode}):\n{proc.stderr}")
        return proc, elapsed

    def api(self, context: Path, **kwargs: object) -> dict[str, object]:
        """Call ocibuild.build() as the user; returns a few fields of its report."""
        code = (
            "import json,sys,ocibuild\n"
            "kw=json.loads(sys.argv[1])\n"
            "r=ocibuild.build(sys.argv[2], **kw)\n"
            "print(json.dumps({'materialized': r.materialized, 'steps': r.steps,"
            " 'cached': r.cached_steps, 'manifest': r.manifest_digest}))\n"
        )
        kwargs.setdefault("root", str(self.root))
        proc = self.user.run([Path(OCIBUILD).parent / "python", "-c", code, json.dumps(kwargs),
                              context], cwd=REPO)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def batch(self, jobs: list[dict[str, object]]) -> list[dict[str, str]]:
        """Run many build() calls in one process of the user (tests/build/batch.py)."""
        jobs_file = self.tmp / f"jobs-{len(list(self.tmp.glob('jobs-*')))}.json"
        jobs_file.write_text(json.dumps(
            [{"root": str(self.root), **job} for job in jobs], default=str))
        proc = self.user.run([Path(OCIBUILD).parent / "python", "-m", "tests.build.batch",
                              jobs_file], cwd=REPO)
        assert proc.returncode == 0, proc.stderr
        results = [json.loads(line) for line in proc.stdout.splitlines()]
        assert len(results) == len(jobs), proc.stderr
        return results

    def new_store(self, template: Path, name: str) -> Path:
        dest = self.tmp / name
        shutil.copytree(template, dest, symlinks=True)
        for p in [dest, *dest.rglob("*")]:
            os.lchown(p, self.user.uid, self.user.gid)
        return dest


@pytest.fixture(scope="module")
def module_builder(sub_user: User, busybox_store_template: Path) -> Iterator[Builder]:
    """A builder whose directory and store last for a test module (table tests)."""
    tmp = sub_user.make_tempdir()
    b = Builder(sub_user, tmp, tmp / "store")
    b.root = b.new_store(busybox_store_template, "store")
    yield b
    remove_tree(tmp)


@pytest.fixture
def builder(sub_user: User, sub_tmp: Path, busybox_store_template: Path) -> Builder:
    b = Builder(sub_user, sub_tmp, sub_tmp / "store")
    b.root = b.new_store(busybox_store_template, "store")
    return b


def copy_fixture(name: str, dest: Path, user: User) -> Path:
    shutil.copytree(FIXTURES / name, dest, symlinks=True)
    give_to(dest, user)
    return dest


def give_to(path: Path, user: User) -> None:
    """Make a tree the test wrote (as root) the user's."""
    for p in [path, *path.rglob("*")]:
        os.lchown(p, user.uid, user.gid)


def write_context(dest: Path, files: dict[str, str | bytes], user: User) -> Path:
    """A context directory with these files (relative path -> content), the user's."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    give_to(dest, user)
    return dest


def image_digest(log: str) -> str:
    """The manifest digest from `ocibuild build`'s "writing image sha256:..." line."""
    for line in log.splitlines():
        if line.startswith("writing image "):
            return line.split()[2]
    raise AssertionError(f"no 'writing image' line in:\n{log}")


def step_states(log: str) -> dict[str, str]:
    """Step name -> "CACHED" | "DONE" | "ERROR" | "CANCELED" from a plain progress log
    (of the steps named in brackets: the Dockerfile's and "[internal] load metadata")."""
    names: dict[str, str] = {}
    states: dict[str, str] = {}
    for line in log.splitlines():
        if not line.startswith("#"):
            continue
        num, _, rest = line.partition(" ")
        if rest.startswith("["):
            names[num] = rest
        elif num in names and (rest in ("CACHED", "CANCELED")
                               or rest.startswith(("DONE", "ERROR"))):
            states[names[num]] = rest.split()[0].rstrip(":")
    return states
