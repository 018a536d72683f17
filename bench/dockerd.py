"""The benchmark's private dockerd: the tests' one (tests/support/dockerd.py), on overlay2
when the kernel and the scratch filesystem allow it, plus its peak memory, which the
benchmark reports for BuildKit.

The tests' daemon uses vfs, which copies a layer's whole tree for every step: fine for
the tests' tiny images, but it slows BuildKit on big contexts for a reason no user of
overlay2 (docker's default) sees. So the benchmark asks for overlay2 and keeps vfs only
when dockerd refuses it; `storage_driver` and `fallback_reason` say which one ran.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support import dockerd as _base
from tests.support.dockerd import _PATH, DOCKER, DOCKERD

__all__ = ["DOCKER", "DOCKERD", "Dockerd"]


class Dockerd(_base.Dockerd):
    storage_driver = "vfs"
    fallback_reason = ""
    wanted_driver = "overlay2"  # "vfs": the tests' daemon, for a comparison

    def start(self) -> None:
        """Start on overlay2; if dockerd cannot use it here, start again on vfs."""
        if self.wanted_driver == "vfs":
            self._start_with("vfs")
            self.storage_driver = self._running_driver()
            return
        try:
            self._start_with("overlay2")
            self.storage_driver = self._running_driver()
            if self.storage_driver == "overlay2":
                return
            self.fallback_reason = f"dockerd ran with {self.storage_driver}"
            self.stop()
        except RuntimeError as exc:
            self.fallback_reason = str(exc).strip().splitlines()[-1][:300]
        shutil.rmtree(self.workdir / "data", ignore_errors=True)
        self._start_with("vfs")
        self.storage_driver = self._running_driver()

    def _start_with(self, driver: str) -> None:
        cmd = [DOCKERD, "--storage-driver", driver, "--iptables=false", "--bridge=none",
               "--data-root", str(self.workdir / "data"),
               "--exec-root", str(self.workdir / "exec"),
               "--pidfile", str(self.workdir / "dockerd.pid"), "-H", self.host]
        with open(self.log, "ab") as log:
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

    def _running_driver(self) -> str:
        proc = subprocess.run([DOCKER, "info", "--format", "{{json .Driver}}"],
                              env=self.env(), capture_output=True, text=True)
        return json.loads(proc.stdout) if proc.returncode == 0 else "unknown"

    def reset_peak_rss(self) -> None:
        """Reset VmHWM to the current RSS (Linux clear_refs 5), so each run has its own."""
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0
