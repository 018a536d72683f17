"""A private dockerd (Debian's docker.io) for the tests and the benchmark: vfs storage, no
iptables, no bridge (containers run with --network none), its own data root, exec root,
pidfile and socket under a scratch directory. Stopped by PID, with its containerd."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"  # Debian's client; /usr/local/bin/docker may be another one
_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class Dockerd:
    """One dockerd under `workdir`. `socket_group`: the group its socket is given to
    (dockerd --group), so that an unprivileged test user can reach it."""

    def __init__(self, workdir: Path, socket_group: str | None = None) -> None:
        self.workdir = workdir
        self.socket = workdir / "docker.sock"
        self.log = workdir / "dockerd.log"
        self.socket_group = socket_group
        self.proc: subprocess.Popen[bytes] | None = None
        self.children: list[int] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def host(self) -> str:
        """DOCKER_HOST for this daemon."""
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        """What the docker client needs: this daemon, BuildKit, a private config dir."""
        return {"PATH": _PATH, "HOME": str(self.workdir), "DOCKER_HOST": self.host,
                "DOCKER_BUILDKIT": "1", "DOCKER_CONFIG": str(self.workdir / "client-config"),
                "LANG": "C.UTF-8"}

    def docker(self, *args: str, check: bool = True, **kwargs: object
               ) -> subprocess.CompletedProcess[str]:
        """Run the docker client against this daemon."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 300)
        proc: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
            [DOCKER, *args], env=self.env(), **kwargs)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def start(self) -> None:
        cmd = [DOCKERD, "--storage-driver", "vfs", "--iptables=false", "--bridge=none",
               "--data-root", str(self.workdir / "data"),
               "--exec-root", str(self.workdir / "exec"),
               "--pidfile", str(self.workdir / "dockerd.pid"),
               "-H", self.host]
        if self.socket_group:
            cmd += ["--group", self.socket_group]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={"PATH": _PATH})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited:\n{self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
                s.connect(str(self.socket))
                if subprocess.run([DOCKER, "info"], env=self.env(),
                                  capture_output=True).returncode == 0:
                    self.children = self._child_pids()
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"dockerd did not start:\n{self.log.read_text()[-2000:]}")

    def _child_pids(self) -> list[int]:
        with contextlib.suppress(OSError):
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
            return [int(p) for p in text.split()]
        return []

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # dockerd normally stops the containerd it started; make sure, by that PID only.
        for pid in self.children:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "containerd":
                    os.kill(pid, signal.SIGTERM)
