"""Snapshots: layers extracted once per diffID, and root filesystems for steps made of them.

Two snapshotters share one interface: `overlay` (an overlay mount of the extracted
layers with a fresh upper directory; the upper directory is the step's change) and
`native` (a real copy of the parent tree; the change is found by a stat-signature scan).
Both give the same layer bytes for the same change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ocibuild.oci.descriptor import Descriptor

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.snapshot.base import Prepared


@dataclass(frozen=True)
class LayerRef:
    """A layer as the snapshotter and the exporters need it: its blob and its diffID."""

    descriptor: Descriptor  # blob in store.layout
    diff_id: str


class Snapshotter(Protocol):
    kind: str  # "overlay" | "native"
    materialized: int  # prepare() calls so far (a cached rebuild makes none)

    def prepare(self, layers: Sequence[LayerRef]) -> Prepared: ...

    def commit(self, prepared: Prepared, *, compression: str = "gzip",
               source_date_epoch: int | None = None) -> object | None: ...

    def release(self, prepared: Prepared) -> None: ...


def open_snapshotter(store: Store, kind: str = "auto") -> Snapshotter:
    """The snapshotter `kind` ("overlay", "native" or "auto": overlay where it mounts)."""
    from ocibuild.snapshot.select import open_snapshotter as _open

    return _open(store, kind)


__all__ = ["LayerRef", "Snapshotter", "open_snapshotter"]
