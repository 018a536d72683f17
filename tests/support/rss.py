"""Run a command and report its peak resident memory.

wait4's ru_maxrss of a child counts the memory the child had between fork and exec,
which is its parent's: a test process of 150 MB would be measured instead of the
command. So the command is started by a small launcher (this interpreter without site,
a few MB) that forks and execs it, and reports the command's own peak from its wait4.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

_LAUNCHER = (
    "import os,sys,time\n"
    "t=time.perf_counter()\n"
    "pid=os.fork()\n"
    "if pid==0:\n"
    "    os.execvp(sys.argv[2],sys.argv[2:])\n"
    "_,status,usage=os.wait4(pid,0)\n"
    "os.write(int(sys.argv[1]),b'%d %.6f'%(usage.ru_maxrss,time.perf_counter()-t))\n"
    "if os.WIFSIGNALED(status): os.kill(os.getpid(),os.WTERMSIG(status))\n"
    "os._exit(os.waitstatus_to_exitcode(status))\n"
)


@dataclass(frozen=True)
class Measured:
    returncode: int
    peak_rss_mb: float
    seconds: float
    stdout: str
    stderr: str


def spawn_measured(cmd: Sequence[str | os.PathLike[str]], *, stdout: IO[Any] | int | None,
                   stderr: IO[Any] | int | None, **popen: Any) -> tuple[int, float, float]:
    """Run `cmd` to completion (popen: env, cwd, user, group, ...): its exit status, its
    own peak RSS in MiB (that of the largest process of its tree that it waited for) and
    its wall time in seconds (from its fork to its end: the launcher's start excluded)."""
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _LAUNCHER, str(write_end),
                                 *map(str, cmd)], stdout=stdout, stderr=stderr,
                                stdin=subprocess.DEVNULL, pass_fds=(write_end,), **popen)
        os.close(write_end)
        write_end = -1
        report = b""
        while chunk := os.read(read_end, 64):
            report += chunk
        proc.wait()
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    peak_kb, seconds = report.split() if report else (b"0", b"0")
    return proc.returncode, int(peak_kb) / 1024, float(seconds)


def run_measured(cmd: Sequence[str], env: dict[str, str] | None = None) -> Measured:
    """Run `cmd` to completion; its exit status, peak RSS (MiB), wall time and output."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        code, peak, seconds = spawn_measured(cmd, stdout=out, stderr=err, env=env, text=True)
        out.seek(0)
        err.seek(0)
        return Measured(code, peak, seconds, out.read(), err.read())
