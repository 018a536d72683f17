"""Static helper programs that attack a step's sandbox from inside, and what they need.

The C sources next to this file are compiled once per test session with
`gcc -static` (scripts/bootstrap.sh installs gcc and libc6-dev):

- steal: takes every descriptor it can reach with pidfd_getfd (pid 1 first) and writes
  forged control messages into each (see steal.c);
- peek: ptrace of pid 1, its /proc/1/exe, cmdline, environ, mountinfo and status;
- keys: add_key and keyctl, which a hardened step must not reach.

This module also writes the forged messages (`forged_payload`), the marker files and
directories those messages name (`Markers`), and a harmless process whose process group
a forged STEP_PGID message names (`decoy`).
"""

from __future__ import annotations

import atexit
import functools
import marshal
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.users import User

SOURCES = Path(__file__).resolve().parent
HELPERS = ("steal", "peek", "keys")
UP = "../" * 40  # more than enough to climb from any step root to the host's /

# control message kinds (ocibuild/sandbox/protocol.py)
CREATED, STEP_PGID, EXITED, ERROR = "C", "P", "X", "E"


def build_helpers(dest: Path) -> dict[str, Path]:
    """Compile every helper into `dest` (static, so they run in a busybox root)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc is missing: scripts/bootstrap.sh test installs gcc and "
                           "libc6-dev, which the sandbox attack tests need")
    built = {}
    for name in HELPERS:
        out = dest / name
        done = subprocess.run([gcc, "-static", "-O2", "-o", str(out), str(SOURCES / f"{name}.c")],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"cannot build the {name} helper (is libc6-dev installed?):\n"
                               f"{done.stderr}")
        os.chmod(out, 0o755)
        built[name] = out
    return built


@functools.cache
def helpers() -> dict[str, Path]:
    """The helpers, built once per process into a directory every test user can read
    (pytest's own temp directories are private to root)."""
    dest = Path(tempfile.mkdtemp(prefix="ocib-attack-", dir="/tmp"))
    os.chmod(dest, 0o755)
    atexit.register(shutil.rmtree, dest, True)
    return build_helpers(dest)


def install(helper: Path, root: Path, owner: User) -> str:
    """Copy a helper into a root filesystem (owned by `owner`, as the root's files are);
    returns its path inside the step."""
    target = root / helper.name
    shutil.copyfile(helper, target)
    os.chmod(target, 0o755)
    os.chown(target, owner.uid, owner.gid)
    return f"/{helper.name}"


def host_pidns_inode() -> int:
    """The inode of this process's PID namespace: steal refuses to run in it."""
    return os.stat("/proc/self/ns/pid").st_ino


# ---- forged control messages ------------------------------------------------------


def marshal_message(kind: str, payload: object) -> bytes:
    """A message as the builder reads them today: kind, 4-byte length, marshal."""
    body = marshal.dumps(payload)
    return kind.encode() + len(body).to_bytes(4, "big") + body


def text_message(kind: str, text: str) -> bytes:
    """A message in the text wire format: kind, 4-byte length, UTF-8 text (CREATED:
    paths separated by NUL bytes; EXITED and STEP_PGID: a decimal integer)."""
    body = text.encode()
    return kind.encode() + len(body).to_bytes(4, "big") + body


def forged_payload(paths: list[str], pgid: int, error: str) -> bytes:
    """Forged CREATED, STEP_PGID, EXITED and ERROR messages in both wire formats.

    The marshal messages that the builder of today decodes come first, then the text
    ones (which marshal cannot decode), then one last marshal EXITED: a builder that
    stops at the first message it cannot decode has by then taken a forged CREATED list
    and STEP_PGID but no EXITED."""
    return b"".join([
        marshal_message(CREATED, paths),
        marshal_message(STEP_PGID, pgid),
        marshal_message(ERROR, error),
        text_message(CREATED, "\0".join(paths)),
        text_message(EXITED, "0"),
        text_message(STEP_PGID, str(pgid)),
        text_message(ERROR, error),
        marshal_message(EXITED, 0),
    ])


@dataclass(frozen=True)
class Markers:
    """Files and an empty directory outside any step root, owned by the test user:
    a file in its home directory, a file and an empty directory in /tmp."""

    user: User
    name: str

    @classmethod
    def create(cls, user: User) -> Markers:
        markers = cls(user, f"ocib-escape-marker-{uuid.uuid4().hex[:12]}")
        for path in (markers.home_file, markers.tmp_file):
            path.write_text("must survive the step\n")
            os.chown(path, user.uid, user.gid)
        markers.tmp_dir.mkdir()
        os.chown(markers.tmp_dir, user.uid, user.gid)
        return markers

    @property
    def home_file(self) -> Path:
        return self.user.home / self.name

    @property
    def tmp_file(self) -> Path:
        return Path("/tmp") / self.name

    @property
    def tmp_dir(self) -> Path:
        return Path("/tmp") / f"{self.name}.d"

    def all(self) -> list[Path]:
        return [self.home_file, self.tmp_file, self.tmp_dir]

    def missing(self) -> list[str]:
        return [str(p) for p in self.all() if not os.path.lexists(p)]

    def forged_paths(self) -> list[str]:
        """Root-relative paths for a forged CREATED message that all name the markers:
        climbing out with .., absolute, and mixes of both."""
        home = str(self.user.home).strip("/")
        out = []
        for target in (f"{home}/{self.name}", f"tmp/{self.name}", f"tmp/{self.name}.d"):
            out += [
                UP + target,
                "/" + target,
                "a/../../" + UP + target,
                "bin/" + UP + "./" + target,
                ".//..//" * 40 + target,
                "tmp/../" + UP + target,
                "etc/./../" + UP + "./" + target,
            ]
        return out

    def remove(self) -> None:
        for path in (self.home_file, self.tmp_file):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


@contextmanager
def decoy(user: User) -> Iterator[subprocess.Popen[str]]:
    """A harmless `sleep` of `user` in its own process group (its pid is that group's
    id), killed on the way out."""
    proc = user.popen(["sleep", "30"], start_new_session=True,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def damage_outside(missing: list[str], victim_alive: bool) -> list[str]:
    """What an attack changed outside the step: markers the builder's clean-up deleted,
    the decoy a forged STEP_PGID got killed. Empty when nothing."""
    problems = []
    if missing:
        problems.append(f"the builder's clean-up deleted {missing}")
    if not victim_alive:
        problems.append("the builder killed the process group a forged STEP_PGID named")
    return problems
