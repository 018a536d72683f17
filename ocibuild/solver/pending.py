"""The solver's layers besides those in the store (LayerRef): layers still being written
while the build goes on, and cached layers that only a --cache-from cache holds. All
three are `Layer`s: the solver asks each for its blob when it needs the bytes.

With the overlay snapshotter a step's whole change is its upper directory, which is
already what overlayfs reads as a lower directory. So a later step of the same build
stacks that directory directly, and the step's layer blob (tar, compress, digest) is
written in the background; only the export and the cache record wait for it.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.deferred import deferred_dataclass
from ocibuild.oci.layerref import Layer, LayerRef

if TYPE_CHECKING:
    from ocibuild.cache.remote.lookup import RemoteRecords
    from ocibuild.oci.layout import ImageLayout
    from ocibuild.threads import Task


@deferred_dataclass(frozen=True, eq=False)
class PendingLayer:
    """A step's layer still being written: its upper directory, and the blob later."""

    dir: Path  # the step's upper directory: the layer's content, overlay-ready
    future: Task[LayerRef | None]  # the blob once written (None: the step changed nothing)


    @property
    def ready(self) -> bool:
        return self.future.done()

    def written(self) -> LayerRef | None:
        return self.future.result()

    def ensure_local(self, layout: ImageLayout) -> None:
        """Nothing to fetch: it is being written into the store."""


@deferred_dataclass(frozen=True)
class RemoteLayer:
    """A cached layer whose record came from a --cache-from cache: the store may lack its
    blob until something reads it (fetched once, whatever the threads asking)."""

    ref: LayerRef
    records: RemoteRecords = field(compare=False)
    ready = True

    def written(self) -> LayerRef:
        return self.ref

    def ensure_local(self, layout: ImageLayout) -> None:
        self.records.ensure(layout, self.ref.descriptor)


Slot = Layer


def lower(slot: Slot) -> LayerRef | Path:
    """What the overlay snapshotter stacks for this slot."""
    if isinstance(slot, PendingLayer):
        return slot.dir
    layer = slot.written()
    assert layer is not None  # only a step's pending layer may turn out empty
    return layer


def resolve(slot: Slot | None) -> LayerRef | None:
    """The slot's layer, waiting for it to be written."""
    return None if slot is None else slot.written()


def resolve_chain(chain: tuple[Slot, ...]) -> tuple[LayerRef, ...]:
    return tuple(layer for s in chain if (layer := resolve(s)) is not None)
