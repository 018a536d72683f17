"""kill -9 at chosen moments of a build or a push, and what must hold afterwards.

Shared by tests/reliability (5 kills each) and bench/reliability.py (20 each). A moment
is a progress line to wait for (or the start) plus a random delay; a kill signals the
builder alone or its whole process group (what a CI runner's timeout does). A kill's
seed picks all three, the snapshotter, and whether the killed build has its output or
only the store (consecutive seeds take the moments in turn); `Kill.replay` shows them.

After each kill: `ocibuild cache check` reports nothing but the killed process's
leftovers, the output is absent or a complete OCI layout, the next build (or push)
succeeds and gives the image an uninterrupted one gives, and then the check is clean.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.build.conftest import give_to, step_states
from tests.support.paths import OCIBUILD
from tests.support.registry_server import RegistryServer
from tests.support.users import User

EPOCH = "1700000000"  # SOURCE_DATE_EPOCH: a build's image digest depends on its inputs only
DATA_MIB = 8  # random (incompressible) bytes COPY'd: their layer takes a while to write


@dataclass(frozen=True)
class Moment:
    """When to kill: `after` a progress line matching this (None: the start; "glob:"
    and a pattern: once a file matching it is in the output's directory), then a random
    delay between `low` and `high` seconds (None: the length of a whole run)."""

    name: str
    after: str | None
    low: float
    high: float | None


# The build takes ~0.6 s after its start: the COPY's layer (DATA_MIB of random bytes) is
# written in the background while the RUN steps go on; after the last step's DONE come
# its layer, the records, the image and the output.
BUILD_MOMENTS = (
    Moment("layer extraction", r"^#2 \[2/4\] COPY", 0.0, 0.1),  # the base layer, then COPY
    Moment("a step", r"^#3 \[3/4\] RUN", 0.0, 0.25),  # its cache mount made first
    Moment("compression", r"^#2 DONE", 0.0, 0.3),
    Moment("cache commit", r"^#4 DONE", 0.0, 0.05),
    Moment("output write", "glob:.tmp-*", 0.0, 0.05),  # the exporter's work directory
    Moment("anywhere", None, 0.0, None),
)

DOCKERFILE = """\
FROM busybox:latest
COPY data.bin /data.bin
RUN --mount=type=cache,target=/cache seq 1 200000 > /numbers && cp /numbers /cache/ && sleep 0.2
RUN cat /data.bin /numbers | md5sum > /sum
"""


@dataclass
class Kill:
    """One kill: where and how it landed, and what went wrong after it (nothing: ok)."""

    number: int
    seed: int
    moment: str
    delay: float
    group: bool
    snapshotter: str = "auto"  # native: layers extracted as whole chains, steps copied
    # the killed build had no output but the store: with overlay it writes no layer
    # blobs (ocibuild.cache.lazy_blobs); the next build, with its output, makes them
    store_only: bool = False
    at: str = ""  # where it landed: the last progress line (a push: the blobs pushed)
    leftovers: int = 0  # what `cache check` found the killed process left
    beside_output: int = 0  # temporary files it left beside the output (not the store's)
    problems: list[str] = field(default_factory=list)

    @property
    def replay(self) -> str:
        return (f"kill {self.number} (seed {self.seed}): {self.moment} + {self.delay:.3f} s, "
                f"{'process group' if self.group else 'builder only'}, {self.snapshotter}"
                f"{', store only' if self.store_only else ''}; {self.at!r}; "
                f"{self.leftovers} leftovers"
                + (f", {self.beside_output} beside the output" if self.beside_output else ""))


# -- the store and context --------------------------------------------------------------------
def template_store(busybox_rootfs: Path, dest: Path) -> Path:
    """A store holding busybox:latest (made as root), copied for each kill."""
    subprocess.run([OCIBUILD, "--root", dest, "import", busybox_rootfs, "--tag",
                    "busybox:latest"], check=True, capture_output=True)
    return dest


def copy_store(template: Path, dest: Path, user: User) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    give_to(dest, user)
    return dest


# for builds beside the scene's: other steps over the same base layer and cache mount
OTHER_DOCKERFILES = (
    "FROM busybox:latest\nCOPY data.bin /d\nRUN wc -c /d > /size\n",
    "FROM busybox:latest\nRUN --mount=type=cache,target=/cache echo other > /o && cp /o /cache/\n"
    "COPY data.bin /data.bin\n",
)


def make_context(dest: Path, seed: int, user: User, dockerfile: str = DOCKERFILE) -> Path:
    """A context whose data differs with `seed`."""
    dest.mkdir(parents=True)
    (dest / "Dockerfile").write_text(dockerfile)
    (dest / "data.bin").write_bytes(random.Random(seed).randbytes(DATA_MIB << 20))
    give_to(dest, user)
    return dest


# -- running ocibuild as the user ------------------------------------------------------------
def ocibuild(user: User, root: Path, *args: str | Path,
             cwd: Path) -> subprocess.CompletedProcess[str]:
    return user.run([OCIBUILD, "--root", root, *args], cwd=cwd,
                    env={"SOURCE_DATE_EPOCH": EPOCH})


def build_args(ctx: Path, out: Path, tag: str, snapshotter: str = "auto") -> list[str | Path]:
    return ["build", "--progress", "plain", "--snapshotter", snapshotter, "-t", tag,
            "-o", f"type=oci,dest={out}", ctx]


def manifest_digest(log: str) -> str:
    for line in log.splitlines():
        if line.startswith("writing image "):
            return line.split()[2]
    raise AssertionError(f"no 'writing image' line in:\n{log}")


class _Lines:
    """A child's stderr lines, read in a thread; `wait_for` a pattern."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(self, pattern: str | None, timeout: float = 120) -> bool:
        """True once a line matches (None: at once); False if the output ended first."""
        if pattern is None:
            return True
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if regex.search(line):
                        return True
                seen = len(self.lines)
                if self._ended or time.monotonic() > deadline:
                    return False
                self._changed.wait(0.5)

    def last(self) -> str:
        with self._changed:
            return self.lines[-1] if self.lines else ""

    def join(self) -> None:
        self._thread.join(timeout=30)


def _kill_while_running(user: User, root: Path, args: list[str | Path], cwd: Path,
                        moment: Moment, kill: Kill, *, log: Path | None = None) -> bool:
    """Start `ocibuild args`, kill -9 it at the moment (whose line is one of its progress,
    or of `log`); False when it ended first."""
    proc = user.popen([OCIBUILD, "--root", root, *args], cwd=cwd,
                      env={"SOURCE_DATE_EPOCH": EPOCH}, stdout=subprocess.DEVNULL,
                      stderr=subprocess.PIPE, start_new_session=True)
    lines = _Lines(proc)
    try:
        if moment.after is not None and moment.after.startswith("glob:"):
            seen = _wait_for_file(cwd, moment.after.removeprefix("glob:"), proc)
        elif log is not None:
            seen = _wait_in_file(log, moment.after, proc)
        else:
            seen = lines.wait_for(moment.after)
        if seen:
            time.sleep(kill.delay)
        kill.at = lines.last()
        if proc.poll() is not None:
            return False
        if kill.group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        _wait_gone(proc.pid)
        return True
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        lines.join()


def _wait_in_file(path: Path, pattern: str | None, proc: subprocess.Popen[str]) -> bool:
    """True once a line of the growing file matches; False if `proc` ended first."""
    if pattern is None:
        return True
    regex = re.compile(pattern)
    start = path.stat().st_size
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            f.seek(start)
            if regex.search(f.read()):
                return True
        time.sleep(0.002)
    return False


def _wait_for_file(directory: Path, pattern: str, proc: subprocess.Popen[str]) -> bool:
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if any(directory.glob(pattern)):
            return True
        time.sleep(0.002)
    return False


def _wait_gone(group: int, seconds: float = 10) -> None:
    """Until the killed process group is empty: after a kill of the builder alone, its
    helpers end by their parent-death signals a moment later."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def check_store(user: User, root: Path, cwd: Path, *, leftovers_allowed: bool,
                kill: Kill | None = None) -> list[str]:
    """Problems `ocibuild cache check` reports. Right after a kill the killed process's
    leftovers are expected (counted in `kill`), and a directory it made but did not get
    to record: the next build removes the ones, records the other."""
    proc = ocibuild(user, root, "cache", "check", cwd=cwd)
    if proc.returncode == 0:
        return []
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    if kill is not None:
        kill.leftovers = sum(ln.startswith("leftover: ") for ln in lines)
    if proc.returncode == 1 and leftovers_allowed:
        bad = [ln for ln in lines
               if not ln.startswith(("leftover: ", "trash: ", "untracked directory: "))
               and not re.match(r"\d+ problems? \(", ln)]
        if not bad:
            return []
    return [f"cache check exited {proc.returncode}: " + " | ".join(lines[-8:])]


# -- outputs -----------------------------------------------------------------------------------
def layout_problems(layout: Path) -> list[str]:
    """An OCI layout directory: every blob matches its digest, index -> manifest ->
    config and layers present, and umoci and skopeo read it."""
    problems: list[str] = []
    blobs = layout / "blobs" / "sha256"
    try:
        index = json.loads((layout / "index.json").read_text())
    except (OSError, ValueError) as exc:
        return [f"index.json unreadable: {exc}"]
    for blob in blobs.iterdir() if blobs.is_dir() else ():
        h = hashlib.sha256()
        with open(blob, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        if h.hexdigest() != blob.name:
            problems.append(f"blob {blob.name} does not match its digest")
    for desc in index.get("manifests", []):
        path = blobs / desc["digest"].split(":")[1]
        if not path.is_file():
            problems.append(f"manifest {desc['digest']} missing")
            continue
        manifest = json.loads(path.read_text())
        for child in [manifest.get("config", {}), *manifest.get("layers", [])]:
            if child and not (blobs / child["digest"].split(":")[1]).is_file():
                problems.append(f"blob {child['digest']} of {desc['digest']} missing")
    if not problems:
        tag = next((d.get("annotations", {}).get("org.opencontainers.image.ref.name")
                    for d in index.get("manifests", [])), None)
        ref = f"{layout}:{tag}" if tag else str(layout)
        for cmd in (["skopeo", "inspect", f"oci:{ref}"], ["umoci", "stat", "--image", ref]):
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                problems.append(f"{cmd[0]} cannot read the output: {proc.stderr.strip()}")
    return problems


def output_problems(out: Path, *, required: bool, digest: str | None = None) -> list[str]:
    """The tar output: absent (unless `required`) or a whole OCI layout (of `digest`)."""
    if not out.exists():
        return ["the output is missing"] if required else []
    with tempfile.TemporaryDirectory(prefix="ocib-kill-out-") as tmp:
        try:
            with tarfile.open(out) as tar:
                tar.extractall(tmp)  # noqa: S202 (the build's own output)
        except (OSError, tarfile.TarError) as exc:
            return [f"the output {out} is not a whole tar: {exc}"]
        problems = layout_problems(Path(tmp))
        if digest is not None and not problems:
            index = json.loads(Path(tmp, "index.json").read_text())
            if digest not in [d["digest"] for d in index.get("manifests", [])]:
                problems.append(f"the output holds another image than {digest}")
    return problems


# -- a kill of a build, and the recovery --------------------------------------------------------
@dataclass
class Scene:
    """What every kill of a build needs: the user, a directory, the store template, the
    context and the image an uninterrupted build of it gives."""

    user: User
    tmp: Path
    template: Path
    ctx: Path
    expected: str = ""
    seconds: float = 1.0  # an uninterrupted build, from its start

    @classmethod
    def make(cls, user: User, tmp: Path, template: Path, seed: int = 0,
             dockerfile: str = DOCKERFILE) -> Scene:
        ctx = make_context(tmp / f"ctx-{seed}", seed, user, dockerfile)
        scene = cls(user, tmp, template, ctx)
        scene.expected = scene.reference()
        return scene

    def others(self) -> list[Scene]:
        """Scenes of the other Dockerfiles, each with its own data and reference image."""
        return [Scene.make(self.user, self.tmp, self.template, seed, dockerfile)
                for seed, dockerfile in enumerate(OTHER_DOCKERFILES, start=1)]

    def fresh(self, name: str) -> tuple[Path, Path]:
        """A directory of the user's and a store copied from the template in it."""
        base = self.tmp / name
        base.mkdir()
        give_to(base, self.user)
        return base, copy_store(self.template, base / "store", self.user)

    def reference(self) -> str:
        base, root = self.fresh(f"reference-{self.ctx.name}")
        started = time.monotonic()
        proc = ocibuild(self.user, root, *build_args(self.ctx, base / "out.tar", "ref:1"),
                        cwd=base)
        if proc.returncode != 0:
            raise AssertionError(f"the reference build failed:\n{proc.stderr}")
        self.seconds = time.monotonic() - started
        return manifest_digest(proc.stderr)


def kill_build(scene: Scene, number: int, seed: int) -> Kill:
    """The seed picks the moment (consecutive seeds take the moments in turn), the delay,
    and whether the builder alone or its process group is killed."""
    rng = random.Random(seed)
    moment = BUILD_MOMENTS[seed % len(BUILD_MOMENTS)]
    high = scene.seconds if moment.high is None else moment.high
    kill = Kill(number, seed, moment.name, rng.uniform(moment.low, high), rng.random() < 0.5,
                rng.choice(("auto", "native")))
    kill.store_only = rng.random() < 0.5
    base, root = scene.fresh(f"kill-{number}")
    out = base / "out.tar"
    args = build_args(scene.ctx, out, f"killed:{number}", kill.snapshotter)
    killed_args = args[:-3] + args[-1:] if kill.store_only else args  # less the -o
    killed = _kill_while_running(scene.user, root, killed_args, base, moment, kill)
    if not killed:
        kill.at += " (the build had ended)"
    kill.problems += check_store(scene.user, root, base, leftovers_allowed=True, kill=kill)
    kill.problems += output_problems(out, required=not killed and not kill.store_only)
    kill.beside_output = len(list(base.glob(".tmp-*")))
    again = ocibuild(scene.user, root, *args, cwd=base)
    if again.returncode != 0:
        kill.problems.append(f"the next build failed: {again.stderr[-2000:]}")
        return kill
    digest = manifest_digest(again.stderr)
    if digest != scene.expected:
        kill.problems.append(f"the next build gave {digest}, not {scene.expected}")
    kill.problems += output_problems(out, required=True, digest=digest)
    kill.problems += check_store(scene.user, root, base, leftovers_allowed=False)
    if left := sorted(p.name for p in base.glob(".tmp-*")):
        kill.problems.append(f"the next build left the killed one's files beside the "
                             f"output: {left}")
    return kill


# -- a kill of a push, and the recovery ---------------------------------------------------------
@dataclass
class PushScene:
    """A store holding the scene's image, and how long a whole push of it takes. Each
    push goes to a registry of its own (a registry that holds the blobs in another
    repository mounts them: nothing would be uploaded)."""

    scene: Scene
    root: Path
    digest: str  # its manifest
    image: str = "pushed:1"
    seconds: float = 1.0
    blobs: list[str] = field(default_factory=list)  # its config and layers

    @classmethod
    def make(cls, scene: Scene) -> PushScene:
        base, root = scene.fresh("push")
        proc = ocibuild(scene.user, root, "build", "--progress", "plain", "-t", "pushed:1",
                        scene.ctx, cwd=base)  # no -o: into the store, as push needs
        assert proc.returncode == 0, proc.stderr
        push = cls(scene, root, manifest_digest(proc.stderr))
        manifest = json.loads((root / "content/blobs/sha256" / push.digest[7:]).read_text())
        push.blobs = [d["digest"] for d in [manifest["config"], *manifest["layers"]]]
        with registry(scene.tmp / "registry-timing") as server:
            started = time.monotonic()
            first = push.push(server.host, "timing/first:1")
            push.seconds = time.monotonic() - started
        assert first.returncode == 0, first.stderr
        return push

    def push(self, host: str, dest: str) -> subprocess.CompletedProcess[str]:
        return ocibuild(self.scene.user, self.root, *self.args(host, dest), cwd=self.scene.tmp)

    def args(self, host: str, dest: str) -> list[str | Path]:
        return ["push", self.image, f"{host}/{dest}", "--insecure-registry", host]


@contextmanager
def registry(workdir: Path) -> Iterator[RegistryServer]:
    """A docker-registry (plain http) on 127.0.0.1."""
    server = RegistryServer.start("http", workdir)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _has_blob(host: str, dest: str, digest: str) -> bool:
    import urllib.error
    import urllib.request

    repo = dest.split(":")[0]
    request = urllib.request.Request(f"http://{host}/v2/{repo}/blobs/{digest}", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status == 200
    except urllib.error.HTTPError:
        return False


def registry_digest(registry: str, dest: str) -> str | None:
    """The digest of the manifest the registry serves for `dest` (None: none)."""
    proc = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                           f"docker://{registry}/{dest}"], capture_output=True)
    if proc.returncode != 0:
        return None
    return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()


def registry_image_problems(registry: str, dest: str, expected: str, tmp: Path) -> list[str]:
    """The registry serves `expected` under `dest`, with every blob (skopeo verifies
    each digest as it copies)."""
    digest = registry_digest(registry, dest)
    if digest != expected:
        return [f"the registry serves {digest} for {dest}, not {expected}"]
    copy = tmp / f"pulled-{dest.replace('/', '-').replace(':', '-')}"
    proc = subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                           f"docker://{registry}/{dest}", f"oci:{copy}:x"],
                          capture_output=True, text=True)
    shutil.rmtree(copy, ignore_errors=True)
    if proc.returncode != 0:
        return [f"skopeo cannot copy {dest} from the registry: {proc.stderr.strip()}"]
    return []


PUSH_MOMENTS = (
    Moment("push start", None, 0.0, 0.3),
    Moment("blob upload", r"POST /v2/\S+/blobs/uploads/", 0.0, 0.1),
    Moment("blob commit", r"PUT /v2/\S+/blobs/uploads/", 0.0, 0.05),
    Moment("manifest", r"PUT /v2/\S+/manifests/", 0.0, 0.02),
)


def kill_push(push: PushScene, number: int, seed: int) -> Kill:
    """`after` of a push moment is a line of the registry's access log."""
    rng = random.Random(seed)
    moment = PUSH_MOMENTS[seed % len(PUSH_MOMENTS)]
    kill = Kill(number, seed, moment.name, rng.uniform(moment.low, moment.high),
                rng.random() < 0.5)
    scene = push.scene
    dest = "killed/push:1"
    with registry(scene.tmp / f"registry-{number}") as server:
        host = server.host
        killed = _kill_while_running(scene.user, push.root, push.args(host, dest), scene.tmp,
                                     moment, kill, log=server.log_path)
        held = sum(_has_blob(host, dest, d) for d in push.blobs)
        kill.at = f"{held}/{len(push.blobs)} blobs in the registry"
        if not killed:
            kill.at += " (the push had ended)"
        kill.problems += check_store(scene.user, push.root, scene.tmp, leftovers_allowed=True,
                                     kill=kill)
        served = registry_digest(host, dest)
        if served not in (None, push.digest):
            kill.problems.append(f"after the kill the registry serves {served} for {dest}")
        again = push.push(host, dest)
        if again.returncode != 0:
            kill.problems.append(f"the next push failed: {again.stderr[-2000:]}")
            return kill
        kill.problems += registry_image_problems(host, dest, push.digest, scene.tmp)
    kill.problems += check_store(scene.user, push.root, scene.tmp, leftovers_allowed=False)
    return kill


# -- builds at the same time on one store -------------------------------------------------------
def concurrent_builds(scene: Scene, others: list[Scene], name: str = "concurrent"
                      ) -> list[str]:
    """Two builds of the scene's context and one of each of `others`, at once on one
    store: all succeed and give the images they give alone, each output is whole, a
    second round finds every step cached with the same images, and the store checks
    clean."""
    base, root = scene.fresh(name)
    scenes = [scene, scene, *others]
    contexts = [s.ctx for s in scenes]
    procs = []
    for i, ctx in enumerate(contexts):
        args = build_args(ctx, base / f"out-{i}.tar", f"concurrent:{i}")
        procs.append(scene.user.popen([OCIBUILD, "--root", root, *args], cwd=base,
                                      env={"SOURCE_DATE_EPOCH": EPOCH},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    problems: list[str] = []
    digests: list[str] = []
    for i, proc in enumerate(procs):
        _, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            problems.append(f"build {i} failed ({proc.returncode}): {err[-2000:]}")
            continue
        digests.append(manifest_digest(err))
        problems += [f"build {i}: {p}" for p in output_problems(
            base / f"out-{i}.tar", required=True, digest=digests[-1])]
    if problems:
        return problems
    for i, (digest, alone) in enumerate(zip(digests, scenes, strict=True)):
        if digest != alone.expected:
            problems.append(f"build {i} gave {digest}, alone it gives {alone.expected}")
    for i, ctx in enumerate(contexts):
        again = ocibuild(scene.user, root, *build_args(ctx, base / f"again-{i}.tar", "again:1"),
                         cwd=base)
        ran = [step for step, state in step_states(again.stderr).items() if state != "CACHED"]
        if again.returncode != 0 or manifest_digest(again.stderr) != digests[i] or ran:
            problems.append(f"rebuilding {i} ran steps or gave another image: "
                            f"{again.stderr[-1500:]}")
    problems += check_store(scene.user, root, base, leftovers_allowed=False)
    return problems
