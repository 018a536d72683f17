"""Run one command and measure its wall time and peak RSS; medians of samples."""

from __future__ import annotations

import os
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.rss import spawn_measured


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
    largest process in the command's tree (wait4's rusage, taken by a small launcher:
    tests.support.rss). Raises CommandFailed."""
    extra: dict[str, object] = {}
    # what earlier work left to write back (a context just made, another engine's
    # build) goes to the disk first: a timed command pays for its own writes only (a 4
    # GB context made just before a build put it at the kernel's dirty-page limit, and
    # that build's writes were throttled to the disk's speed)
    os.sync()
    if user is not None:
        extra = {"user": user.uid, "group": user.gid, "extra_groups": []}
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(map(str, cmd))}\n".encode())
        out.flush()
        code, peak_mb, seconds = spawn_measured(cmd, stdout=out, stderr=subprocess.STDOUT,
                                                env=env, cwd=cwd, **extra)
    if code != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise CommandFailed(f"{cmd[0]} exited {code}:\n{tail}")
    return Sample(seconds, peak_mb)


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(ours: float | None, peer: float | None) -> float | None:
    if ours is None or not peer:
        return None
    return ours / peer
