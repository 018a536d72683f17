"""Calls ocibuild.sandbox.prestart() from several threads at once, waits for those calls'
work to end, then runs one step; prints one JSON object of what it saw: whether any
call raised, how many fork servers this process has before and after the step, and the
step's exit code or error.

Usage: python -m tests.sandbox.prestart_probe ROOTFS [ISOLATION]
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from ocibuild.sandbox import SandboxError, StepSpec, prestart, run_step

CALLERS = 8
_WAIT = 30.0


def fork_servers() -> int:
    """This process's children that are sandbox fork servers."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            if parent != os.getpid():
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                count += b"ocibuild.sandbox.zygote" in f.read()
        except OSError:
            continue
    return count


def _prestarts_running() -> bool:
    return any(t.name == "sandbox-prestart" and t.is_alive() for t in threading.enumerate())


def main() -> None:
    rootfs, isolation = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "userns")
    raised: list[str] = []
    gate = threading.Barrier(CALLERS)

    def call() -> None:
        gate.wait()
        try:
            prestart(isolation)  # type: ignore[arg-type]
        except BaseException as e:  # noqa: BLE001 - what the test checks is that none come
            raised.append(repr(e))

    callers = [threading.Thread(target=call) for _ in range(CALLERS)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    deadline = time.monotonic() + _WAIT
    while _prestarts_running() and time.monotonic() < deadline:
        time.sleep(0.01)
    report: dict[str, object] = {"raised": raised, "servers_before_step": fork_servers()}
    try:
        result = run_step(StepSpec(rootfs=Path(rootfs), argv=["true"]), on_stdout=lambda _: None,
                          on_stderr=lambda _: None, isolation=isolation)  # type: ignore[arg-type]
        report["exit_code"] = result.exit_code
    except SandboxError as e:
        report["error"] = e.message
    report["servers_after_step"] = fork_servers()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
