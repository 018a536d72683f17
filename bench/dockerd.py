"""A private dockerd (Debian's docker.io) for the benchmark: vfs storage, no iptables, no
bridge, its own data root, exec root and socket under a scratch directory. Stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"


class Dockerd:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.socket = workdir / "docker.sock"
        self.log = workdir / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.children: list[int] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def env(self) -> dict[str, str]:
        """What the docker client needs: this daemon, BuildKit, a private config dir."""
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.workdir),
                "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_BUILDKIT": "1",
                "DOCKER_CONFIG": str(self.workdir / "client-config"), "LANG": "C.UTF-8"}

    def start(self) -> None:
        cmd = [DOCKERD, "--storage-driver", "vfs", "--iptables=false", "--bridge=none",
               "--data-root", str(self.workdir / "data"),
               "--exec-root", str(self.workdir / "exec"),
               "--pidfile", str(self.workdir / "dockerd.pid"),
               "-H", f"unix://{self.socket}"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
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
        raise RuntimeError(f"dockerd did not start:\n{self.log.read_text()[-2000:]}")

    def _child_pids(self) -> list[int]:
        with contextlib.suppress(OSError):
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
            return [int(p) for p in text.split()]
        return []

    def reset_peak_rss(self) -> None:
        """Reset VmHWM to the current RSS (Linux clear_refs 5), so each run has its own."""
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

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
