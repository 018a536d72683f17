"""Run one command and measure its wall time and peak RSS; medians of samples."""

from __future__ import annotations

import contextlib
import mmap
import os
import statistics
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.rss import spawn_measured

# touched and freed before every timed command (prime_memory), whatever the engine
PRIMED_BYTES = 1 << 30


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
    # memory just used, whatever ran before (prime_memory); and what earlier work left
    # to write back (a context just made, another engine's build) goes to the disk
    # first: a timed command pays for its own writes only
    if _priming:
        prime_memory(PRIMED_BYTES)
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


_priming = True  # run_measured primes memory first (off inside unprimed())


@contextlib.contextmanager
def unprimed() -> Iterator[None]:
    """Timed commands inside run without prime_memory first (to show what it spares)."""
    global _priming
    _priming = False
    try:
        yield
    finally:
        _priming = True


def prime_memory(wanted: int, keep_free: int = 1 << 30) -> tuple[int, float]:
    """Touch `wanted` bytes of fresh memory (at most what is free but `keep_free`, so
    that no cached file is evicted) and free them again; returns the bytes touched and
    the seconds it took (~0.26 s a GB when the memory is the guest's).

    This machine is a VM that behaves as if its free memory goes back to the host after a
    while (an inference from the timings below, not something visible here): the
    first touch of each such page then costs a fault in the host. Every process that
    needs new memory pays that unless memory was in use just before it, by whatever
    the bench did last: the same 4 GB cold build (same code and context, both in the
    page cache) took 13.3, 14.8 and 15.6 s after 25 s of idle memory and 7.4-7.9 s
    right after 5 GB had been written and deleted or 8.5 GB touched and freed; a cold
    build of fixtures/seed (5 interleaved each) 0.190 s after 25 s of idle memory and
    0.130 s right after 1 GB was touched and freed."""
    free = _meminfo_bytes("MemFree")
    size = max(0, min(wanted, free - keep_free)) // mmap.PAGESIZE * mmap.PAGESIZE
    started = time.monotonic()
    if size:  # the kernel touches every page (MAP_POPULATE); unmapped, they are free
        mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
                  | mmap.MAP_POPULATE).close()
    return size, time.monotonic() - started


def _meminfo_bytes(field: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name == field:
                return int(rest.split()[0]) * 1024
    raise RuntimeError(f"/proc/meminfo has no {field}")


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(ours: float | None, peer: float | None) -> float | None:
    if ours is None or not peer:
        return None
    return ours / peer
