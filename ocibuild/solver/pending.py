"""Layers that are still being written while the build goes on.

With the overlay snapshotter a step's whole change is its upper directory, which is
already what overlayfs reads as a lower directory. So a later step of the same build
stacks that directory directly, and the step's layer blob (tar, compress, digest) is
written in the background; only the export and the cache record wait for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.snapshot import LayerRef

if TYPE_CHECKING:
    from concurrent.futures import Future


@dataclass(frozen=True, eq=False)
class PendingLayer:
    """A step's layer still being written: its upper directory, and the blob later."""

    dir: Path  # the step's upper directory: the layer's content, overlay-ready
    future: Future[LayerRef | None]  # the blob once written (None: the step changed nothing)


Slot = LayerRef | PendingLayer


def lower(slot: Slot) -> LayerRef | Path:
    """What the overlay snapshotter stacks for this slot."""
    return slot.dir if isinstance(slot, PendingLayer) else slot


def resolve(slot: Slot | None) -> LayerRef | None:
    """The slot's layer, waiting for it to be written."""
    if isinstance(slot, PendingLayer):
        return slot.future.result()
    return slot


def resolve_chain(chain: tuple[Slot, ...]) -> tuple[LayerRef, ...]:
    return tuple(layer for s in chain if (layer := resolve(s)) is not None)
