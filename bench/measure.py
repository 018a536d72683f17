"""Run one command and measure its wall time and peak RSS; medians of samples."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class CommandFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Sample:
    seconds: float
    peak_rss_mb: float


@dataclass(frozen=True)
class RunAs:
    uid: int
    gid: int


def run_measured(cmd: Sequence[str | os.PathLike[str]], *, env: dict[str, str],
                 log: Path, cwd: Path | None = None, user: RunAs | None = None) -> Sample:
    """Run `cmd` to completion, output appended to `log`. The peak RSS is that of the
    largest process in the command's tree (wait4's rusage). Raises CommandFailed."""
    extra: dict[str, object] = {}
    if user is not None:
        extra = {"user": user.uid, "group": user.gid, "extra_groups": []}
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(map(str, cmd))}\n".encode())
        out.flush()
        started = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], env=env, cwd=cwd, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                **extra)  # type: ignore[call-overload]
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise CommandFailed(f"{cmd[0]} exited {proc.returncode}:\n{tail}")
    return Sample(seconds, usage.ru_maxrss / 1024)


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(ours: float | None, peer: float | None) -> float | None:
    if ours is None or not peer:
        return None
    return ours / peer
