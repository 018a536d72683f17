"""What solving one op gives: the layers of its whole filesystem and the one it added.

Its own module, below solve.py, so that the parts of the solver that take a result
(`execute.py`, `view.py`) need not import the Solver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ocibuild.solver.pending import Slot


@dataclass(frozen=True)
class OpResult:
    """During the solve a layer may still be pending; solve() returns written ones."""

    layers: tuple[Slot, ...]  # the op's whole filesystem, base first
    layer: Slot | None  # what this op added (None: nothing, or not a fs op)
    cached: bool = False
