"""A fake step runner for the solver's unit tests: RUN steps as a tiny script language
acting on the prepared root directory, no sandbox.

Each `;`-separated command of the step's last argument:
- `write PATH TEXT` writes a file into the root;  `echo TEXT` prints a line;
- `exit N` ends the step with status N;  `raise TEXT` fails as the runtime would;
- `hold NAME` waits until the test opens gate NAME, or the step is cancelled;
- `after NAME` waits until a step is held at gate NAME.
The runner records what ran and how many steps ran at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ocibuild.idspace.requests import RootFS
from ocibuild.sandbox.errors import SandboxError
from ocibuild.sandbox.spec import StepResult, StepSpec


class FakeRunner:
    def __init__(self) -> None:
        self.ran: list[str] = []  # each step's script, in start order
        self.prestarted: list[str] = []
        self.cancelled: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.gates: dict[str, threading.Event] = {}
        self.started: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def gate(self, name: str) -> threading.Event:
        with self._lock:
            return self.gates.setdefault(name, threading.Event())

    def reached(self, name: str) -> threading.Event:
        """Set once a step waits at gate `name`."""
        with self._lock:
            return self.started.setdefault(name, threading.Event())

    def prestart(self, isolation: str) -> None:
        self.prestarted.append(isolation)

    def run(self, spec: StepSpec, *, on_stdout: Callable[[bytes], None],
            on_stderr: Callable[[bytes], None], isolation: str,
            cancel: threading.Event | None) -> StepResult:
        script, rootfs = spec.argv[-1], spec.rootfs
        assert isinstance(rootfs, RootFS), "the memory snapshotter's roots are RootFS"
        root = rootfs.path  # a plain directory, or this raises
        with self._lock:
            self.ran.append(script)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            return self._run(script, root, on_stdout, cancel)
        finally:
            with self._lock:
                self.running -= 1

    def _run(self, script: str, root: Path, on_stdout: Callable[[bytes], None],
             cancel: threading.Event | None) -> StepResult:
        for command in script.split(";"):
            verb, _, rest = command.strip().partition(" ")
            if verb == "write":
                rel, _, text = rest.partition(" ")
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_text(text)
            elif verb == "echo":
                on_stdout(rest.encode() + b"\n")
            elif verb == "exit":
                return StepResult(int(rest))
            elif verb == "raise":
                raise SandboxError(rest)
            elif verb == "after":
                self.reached(rest).wait(10)
            elif verb == "hold":
                self.reached(rest).set()
                gate = self.gate(rest)
                while not gate.wait(0.01):
                    if cancel is not None and cancel.is_set():
                        with self._lock:
                            self.cancelled.append(script)
                        return StepResult(None, signal=9, cancelled=True)
        return StepResult(0)
