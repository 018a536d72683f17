"""The Solver as a step's parts see it.

`execute.py` (a RUN step: its mounts, the sandbox, its output) and `cache_seed.py` (its
cache mounts) work on the state of one solve, yet solve.py imports them, so they may not
import solve.py. They take a `SolverView` instead: the members of the Solver they use,
and nothing else. The Solver fills it without naming it; mypy checks that where solve.py
hands itself over. A part that needs more of the Solver adds the member here, which
keeps what the parts depend on in one short list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import threading
    from collections.abc import Mapping
    from pathlib import Path

    from ocibuild.cache.store import Store
    from ocibuild.graph import ContextSource, InlineSource, Op
    from ocibuild.oci.layerref import LayerRef
    from ocibuild.progress.events import Sink
    from ocibuild.snapshot import Snapshotter
    from ocibuild.snapshot.base import Prepared
    from ocibuild.solver.pending import Slot
    from ocibuild.solver.results import OpResult
    from ocibuild.solver.secret_source import SecretSource
    from ocibuild.solver.step_runner import StepRunner


class StepOptions(Protocol):
    """What a step reads of the solve's options (`SolveOptions`)."""

    names: Mapping[str, str]  # op digest -> progress name
    secrets: Mapping[str, SecretSource]
    ssh: Mapping[str, Path]
    isolation: str
    context_dirs: Mapping[str, Path]  # --build-context NAME=DIR
    ignore_patterns: tuple[str, ...]
    git_modes: bool  # --context-modes=git


class SolverView(Protocol):
    """What a step's parts use of the Solver running it."""

    store: Store
    snap: Snapshotter
    progress: Sink
    index: dict[str, int]  # op digest -> its number in the progress output

    @property
    def opts(self) -> StepOptions: ...

    @property
    def runner(self) -> StepRunner: ...

    @property
    def cancelled(self) -> threading.Event:
        """Set once a step failed: a running step stops."""
        ...

    def context_dir(self, source: ContextSource) -> Path | None: ...

    def inline_dir(self, source: InlineSource) -> Path: ...

    def result_of(self, op: Op) -> OpResult:
        """The result of an op this step depends on (solved before it)."""
        ...

    def filesystem_key(self, op: Op) -> str: ...

    def local_layers(self, chain: tuple[Slot, ...], *,
                     parallel: bool = False) -> tuple[LayerRef, ...]: ...

    def prepare(self, chain: tuple[Slot, ...]) -> Prepared: ...

    def release_later(self, prepared: Prepared) -> None: ...

    def seed_cache(self, source: Op, path: str, dest: Path) -> None: ...
