"""The benchmark's private dockerd: the tests' one (tests/support/dockerd.py), plus its
peak memory, which the benchmark reports for BuildKit."""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.support import dockerd as _base
from tests.support.dockerd import DOCKER, DOCKERD

__all__ = ["DOCKER", "DOCKERD", "Dockerd"]


class Dockerd(_base.Dockerd):
    def reset_peak_rss(self) -> None:
        """Reset VmHWM to the current RSS (Linux clear_refs 5), so each run has its own."""
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0
