"""The three builders under test, each with its own storage under the scratch directory.

Every engine offers: `setup` (make busybox:latest local), `reset` (drop the case's image
and build cache, keep the base: the "cold" state), `build` (`no_cache`: every step again
with the engine's other state kept) and `push`, each returning a measured Sample.
ocibuild also has `cached_push` (a cached build with --push); the peers' counterpart is
their push again. `commands` says what each runs, for RESULTS.md.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.dockerd import DOCKER, Dockerd
from bench.measure import RunAs, Sample, run_measured

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
OCIBUILD = VENV_BIN / "ocibuild"
BENCH_USER = "ocib-sub"


# case -> the work its cold build cannot avoid, as one shell command: no builder can
# finish that case in less time than this takes
FLOOR_COMMANDS: dict[str, str] = {
    "parallel": "(sleep 2 && echo one >/dev/null) & (sleep 2 && echo two >/dev/null) & wait",
}


# what any build must do to know its context is unchanged, whatever it keeps from the
# build before: one lstat of every entry (GNU find, in C), and nothing else
CONTEXT_STAT_WALK = "find {ctx} -printf '%y %m %s %i %T@ %C@ %P\\0' >/dev/null"


def context_stat_floor(ctx: Path, log: Path) -> Sample:
    """The time of one lstat walk of the context (CONTEXT_STAT_WALK): the floor of a
    cached build, which a push that builds nothing (docker push) does not pay."""
    return run_measured(["/bin/sh", "-c", CONTEXT_STAT_WALK.format(ctx=shlex.quote(str(ctx)))],
                        env={"PATH": "/usr/bin:/bin"}, log=log)


# what a cold build of bigctx cannot avoid: its COPY's files written once more, and the
# sha256 of the layer's tar (the diffID an image's config must name), in one pass (the
# tar read once; hashed while it is extracted); the copy removed after, untimed
# ext4 without a journal (fs/ext4/ialloc.c recently_deleted) passes over a free inode
# deleted less than 60 s ago, or 360 s ago when its inode-table block is dirty, which
# the copy's own creates make it: wait out the longer
FREED_INODES_SETTLE = 370  # seconds
CONTEXT_COPY = ("mkfifo {fifo} && mkdir {dest} && {{ openssl dgst -sha256 <{fifo} >/dev/null & "
                "tar -C {ctx} --sort=name -cf - . | tee {fifo} | tar -C {dest} -xf - ; "
                "wait; }}")


def context_copy_floor(ctx: Path, log: Path) -> Sample:
    """The time of CONTEXT_COPY: the floor of every bigctx build that copies the context
    (cold, context kept, one file changed, fresh context). Measured FREED_INODES_SETTLE
    after the runs' last deletion: without a journal, ext4 scans past inodes freed in
    the last 6 minutes on every create (snapshot/spread.py), which made this copy take
    9-23 s instead of 1.1-1.6 s here (one more deletion of its 20k files each time), and
    a floor must be the least a copy can take. Once per bench run: each measurement
    deletes a copy, slowing the next."""
    time.sleep(FREED_INODES_SETTLE)
    dest = ctx.parent / f"{ctx.name}-floor-copy"
    fifo = ctx.parent / f"{ctx.name}-floor-fifo"
    shutil.rmtree(dest, ignore_errors=True)
    fifo.unlink(missing_ok=True)
    try:
        return run_measured(["/bin/sh", "-c", CONTEXT_COPY.format(
            ctx=shlex.quote(str(ctx)), dest=shlex.quote(str(dest)),
            fifo=shlex.quote(str(fifo)))], env={"PATH": "/usr/bin:/bin"}, log=log)
    finally:
        shutil.rmtree(dest, ignore_errors=True)
        fifo.unlink(missing_ok=True)


def floor_sample(case: str, log: Path) -> Sample | None:
    """The time of the case's unavoidable work alone (its RUN commands, run at once as
    its stages may be), or None for a case without one."""
    command = FLOOR_COMMANDS.get(case)
    if command is None:
        return None
    return run_measured(["/bin/sh", "-c", command], env={"PATH": "/usr/bin:/bin"}, log=log)


def tag_of(case: str) -> str:
    return f"bench-{case}:latest"


def _quiet(cmd: list[str], env: dict[str, str], log: Path, check: bool = True) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{log.read_text()[-1500:]}")


# BuildKit's steps run without a network here (its dockerd has no bridge): ocibuild's
# do too, rather than through slirp4netns, so that both do the same work
SAME_NETWORK = ("--network", "none")


class Ocibuild:
    """ocibuild run rootless as the unprivileged ocib-sub user, one store per cold run."""

    name = "ocibuild"

    def __init__(self, workdir: Path) -> None:
        pw = pwd.getpwnam(BENCH_USER)
        self.user = RunAs(pw.pw_uid, pw.pw_gid)
        self.workdir = workdir / "ocibuild"
        self.workdir.mkdir()
        self.home = self.workdir / "home"
        self.home.mkdir()
        for p in (self.workdir, self.home):
            os.chown(p, self.user.uid, self.user.gid)
        self.template = self.workdir / "template-store"
        self.store = self.workdir / "store"
        self.log = workdir / "ocibuild.log"
        self.generation = 0

    def env(self) -> dict[str, str]:
        # The user cannot write __pycache__ in the root-owned source tree, so a module
        # edited since root last imported it would be compiled on every run: give the
        # user its own bytecode cache, as an installed package would have.
        return {"HOME": str(self.home), "USER": BENCH_USER, "LOGNAME": BENCH_USER,
                "PATH": f"{VENV_BIN}:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8",
                "PYTHONPYCACHEPREFIX": str(self.home / "pycache")}

    def setup(self, rootfs: Path, registry: str) -> None:
        _quiet([str(OCIBUILD), "--root", str(self.template), "import", str(rootfs),
                "--tag", "busybox:latest"], self.env(), self.log)
        # the import ran as root: its store, and the bytecode cache it started under
        # HOME (else the user can never write the rest and recompiles every run)
        subprocess.run(["chown", "-R", f"{self.user.uid}:{self.user.gid}",
                        str(self.template), str(self.home)], check=True)
        # One throwaway build extracts the base layer, as the peers have it unpacked.
        warm = self.workdir / "warm"
        warm.mkdir()
        (warm / "Dockerfile").write_text("FROM busybox:latest\nRUN true\n")
        os.chown(warm, self.user.uid, self.user.gid)
        run_measured([OCIBUILD, "--root", self.template, "build", "--progress", "plain",
                      warm], env=self.env(), log=self.log, cwd=self.home, user=self.user)

    def reset(self, case: str) -> None:
        if self.store.exists():
            shutil.rmtree(self.store)
        subprocess.run(["cp", "-a", str(self.template), str(self.store)], check=True)

    def forget_rebuild_memos(self) -> None:
        shutil.rmtree(self.store / "rebuilds", ignore_errors=True)

    def build_cmd(self, ctx: Path, case: str, *extra: str) -> list[str]:
        return [str(OCIBUILD), "--root", str(self.store), "build", "--progress", "plain",
                *SAME_NETWORK, "-t", tag_of(case), *extra, str(ctx)]

    def build(self, case: str, ctx: Path, no_cache: bool = False) -> Sample:
        extra = ["--no-cache"] if no_cache else []
        return run_measured(self.build_cmd(ctx, case, *extra), env=self.env(), log=self.log,
                            cwd=self.home, user=self.user)

    def cached_push(self, case: str, ctx: Path, ref: str, registry: str,
                    memo: bool = True) -> Sample:
        """The same build again with --push to `ref`, which already holds every blob:
        every step is cached, nothing is uploaded. With `memo`, the rebuild memo the
        build before it left answers (after asking the registry); without, the memos are
        removed first and the engine runs."""
        if not memo:
            self.forget_rebuild_memos()
        cmd = [str(OCIBUILD), "--root", str(self.store), "build", "--progress", "plain",
               *SAME_NETWORK, "-t", ref, "--push", "--insecure-registry", registry, str(ctx)]
        return run_measured(cmd, env=self.env(), log=self.log, cwd=self.home, user=self.user)

    def push(self, case: str, ref: str, registry: str) -> Sample:
        return run_measured([OCIBUILD, "--root", self.store, "push", tag_of(case), ref,
                             "--insecure-registry", registry], env=self.env(), log=self.log,
                            cwd=self.home, user=self.user)

    def profile(self, case: str, ctx: Path, out: Path, extra: Sequence[str] = ()) -> None:
        """Run the build once under pyinstrument (main thread; text report to `out`)."""
        cmd = [str(VENV_BIN / "python"), "-m", "pyinstrument", "-r", "text", "--no-color",
               "-o", str(out), "-m", "ocibuild", *self.build_cmd(ctx, case, *extra)[1:]]
        run_measured(cmd, env=self.env(), log=self.log, cwd=self.home, user=self.user)

    def profile_all_threads(self, case: str, ctx: Path, out: Path, rate: int,
                            extra: Sequence[str] = ()) -> None:
        """Run the build once under py-spy (every thread and subprocess; raw stacks to
        `out`). py-spy runs as root, the build as the user."""
        env = self.env()
        drop = ["setpriv", f"--reuid={self.user.uid}", f"--regid={self.user.gid}",
                "--clear-groups", "env", *[f"{k}={v}" for k, v in env.items()]]
        cmd = [str(VENV_BIN / "py-spy"), "record", "--threads", "--subprocesses", "-r",
               str(rate), "-f", "raw", "-o", str(out), "--", *drop,
               str(VENV_BIN / "python"), "-m", "ocibuild", *self.build_cmd(ctx, case, *extra)[1:]]
        run_measured(cmd, env=env, log=self.log, cwd=self.home)

    def commands(self) -> list[str]:
        return [f"(as {BENCH_USER}) ocibuild --root STORE build --progress plain "
                "--network none -t TAG CTX",
                "cold: STORE is a fresh copy of a store holding only busybox:latest "
                "(already unpacked)",
                "cold, context kept: the same command with --no-cache, STORE kept",
                f"(as {BENCH_USER}) ocibuild --root STORE push TAG 127.0.0.1:PORT/REPO "
                "--insecure-registry 127.0.0.1:PORT",
                "cached build --push: the build again with -t 127.0.0.1:PORT/REPO --push "
                "--insecure-registry 127.0.0.1:PORT (every blob already there; the rebuild "
                "memo answers); cached build --push, no memo: the same with the store's "
                "rebuild memos removed first"]

    def close(self) -> None:
        pass


class BuildKit:
    """BuildKit as built into Debian's dockerd 20.10; RSS is the daemon's VmHWM."""

    name = "BuildKit"

    def __init__(self, workdir: Path) -> None:
        self.daemon = Dockerd(workdir / "docker")
        (workdir / "docker").mkdir()
        self.log = workdir / "docker.log"

    def docker(self, *args: str, check: bool = True) -> None:
        _quiet([DOCKER, *args], self.daemon.env(), self.log, check=check)

    def setup(self, rootfs: Path, registry: str) -> None:
        self.daemon.start()
        self.docker("pull", f"{registry}/library/busybox:latest")
        self.docker("tag", f"{registry}/library/busybox:latest", "busybox:latest")

    def reset(self, case: str) -> None:
        self.docker("image", "rm", "-f", tag_of(case), check=False)
        self.docker("builder", "prune", "-af")

    def _daemon_measured(self, cmd: list[str]) -> Sample:
        self.daemon.reset_peak_rss()
        sample = run_measured(cmd, env=self.daemon.env(), log=self.log)
        return Sample(sample.seconds, self.daemon.peak_rss_mb())

    def build(self, case: str, ctx: Path, no_cache: bool = False) -> Sample:
        extra = ["--no-cache"] if no_cache else []
        return self._daemon_measured([DOCKER, "build", "--network", "none", "--progress",
                                      "plain", "-t", tag_of(case), *extra, str(ctx)])

    def push(self, case: str, ref: str, registry: str) -> Sample:
        self.docker("tag", tag_of(case), ref)
        return self._daemon_measured([DOCKER, "push", ref])

    def commands(self) -> list[str]:
        driver = self.daemon.storage_driver
        why = (f" (overlay2 refused: {self.daemon.fallback_reason})"
               if self.daemon.fallback_reason else "")
        return [f"dockerd --storage-driver {driver} --iptables=false --bridge=none "
                f"--data-root DIR --exec-root DIR -H unix://SOCK{why}",
                "DOCKER_BUILDKIT=1 /usr/bin/docker build --network none --progress plain "
                "-t TAG CTX",
                "cold: docker image rm -f TAG; docker builder prune -af (busybox:latest kept; "
                "the prune also drops the context BuildKit kept from earlier builds)",
                "cold, context kept: the same command with --no-cache right after builds "
                "of the same context (BuildKit keeps the context it received)",
                "docker tag TAG 127.0.0.1:PORT/REPO; docker push 127.0.0.1:PORT/REPO",
                "cached build --push: docker push 127.0.0.1:PORT/REPO once more"]

    def close(self) -> None:
        self.daemon.stop()


class Buildah:
    """buildah as root with vfs storage and chroot isolation, in private storage dirs."""

    name = "buildah"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir / "buildah"
        (self.workdir / "tmp").mkdir(parents=True)
        self.log = workdir / "buildah.log"
        self.base = ["buildah", "--root", str(self.workdir / "root"), "--runroot",
                     str(self.workdir / "run"), "--storage-driver", "vfs"]
        self.jobs = str(os.cpu_count() or 2)

    def env(self) -> dict[str, str]:
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.workdir),
                "TMPDIR": str(self.workdir / "tmp"), "LANG": "C.UTF-8"}

    def setup(self, rootfs: Path, registry: str) -> None:
        _quiet([*self.base, "pull", "--tls-verify=false",
                f"docker://{registry}/library/busybox:latest"], self.env(), self.log)
        _quiet([*self.base, "tag", f"{registry}/library/busybox:latest",
                "docker.io/library/busybox:latest"], self.env(), self.log)

    def reset(self, case: str) -> None:
        _quiet([*self.base, "rmi", "-f", tag_of(case)], self.env(), self.log, check=False)
        _quiet([*self.base, "rmi", "--prune"], self.env(), self.log, check=False)

    def build(self, case: str, ctx: Path, no_cache: bool = False) -> Sample:
        extra = ["--no-cache"] if no_cache else []
        return run_measured([*self.base, "bud", "--layers", "--isolation", "chroot",
                             "--jobs", self.jobs, "-t", tag_of(case), *extra, str(ctx)],
                            env=self.env(), log=self.log)

    def push(self, case: str, ref: str, registry: str) -> Sample:
        return run_measured([*self.base, "push", "--tls-verify=false", tag_of(case),
                             f"docker://{ref}"], env=self.env(), log=self.log)

    def commands(self) -> list[str]:
        return [f"buildah --storage-driver vfs bud --layers --isolation chroot "
                f"--jobs {self.jobs} -t TAG CTX  (private --root/--runroot; chroot isolation "
                "refuses --network none)",
                "cold: buildah rmi -f TAG; buildah rmi --prune (busybox:latest kept)",
                "cold, context kept: the same command with --no-cache",
                "buildah push --tls-verify=false TAG docker://127.0.0.1:PORT/REPO",
                "cached build --push: buildah push once more"]

    def close(self) -> None:
        pass


ENGINES = {"ocibuild": Ocibuild, "buildkit": BuildKit, "buildah": Buildah}
