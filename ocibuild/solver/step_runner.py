"""What runs a RUN step for the solver: the sandbox, or a fake in the solver's unit tests.

The solver hands a runner a `StepSpec` (the root the snapshotter prepared, argv, env,
mounts) and reads a `StepResult`; which runtime is behind it is not its business, as
BuildKit's solver talks to an `Executor`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from ocibuild.sandbox.spec import StepResult, StepSpec


class StepRunner(Protocol):
    def prestart(self, isolation: str) -> None:
        """A step will run soon: start what running one needs, in the background."""
        ...

    def run(self, spec: StepSpec, *, on_stdout: Callable[[bytes], None],
            on_stderr: Callable[[bytes], None], isolation: str,
            cancel: threading.Event | None) -> StepResult:
        """Run the step as sandbox.run_step does: its own failure is the result; setting
        `cancel` stops it (the result is then cancelled); a runtime failure raises."""
        ...


class SandboxRunner:
    """Steps in the sandbox (ocibuild.sandbox.run_step)."""

    def prestart(self, isolation: str) -> None:
        from ocibuild.sandbox import prestart

        prestart(isolation)  # type: ignore[arg-type]

    def run(self, spec: StepSpec, *, on_stdout: Callable[[bytes], None],
            on_stderr: Callable[[bytes], None], isolation: str,
            cancel: threading.Event | None) -> StepResult:
        from ocibuild.sandbox import run_step

        return run_step(spec, on_stdout=on_stdout, on_stderr=on_stderr,
                        isolation=isolation, cancel=cancel)  # type: ignore[arg-type]
