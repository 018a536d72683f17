"""Snapshots: layers extracted once per diffID, and root filesystems for steps made of them.

Two snapshotters share one interface: `overlay` (an overlay mount of the extracted
layers with a fresh upper directory; the upper directory is the step's change) and
`native` (a real copy of the parent tree; the change is found by a stat-signature scan).
Both give the same layer bytes for the same change.

Interface besides open_snapshotter/Snapshotter/LayerRef (the solver uses these too):
- `snapshot.base.layer_dir(store, ref) -> Path`: a layer extracted once as an overlay
  lower directory (read-only sources for COPY --from);
- `snapshot.base.WriteLayer`: the request for a layer blob from an upper directory or a
  change list, answered under the sandbox mapping;
- `idspace.userns.session()`, `request()`, `request_isolated()`: typed requests
  answered under the sandbox mapping, through one file-op server per build
  (`idspace.worker`).

The solver never asks which snapshotter it holds: what differs is a declared capability,
`stacks_pending` (overlay: a step's upper directory is already a lower directory, so a
later step stacks it while its layer blob is written in the background).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from ocibuild.oci.layerref import LayerRef

if TYPE_CHECKING:
    from pathlib import Path

    from ocibuild.cache.store import Store
    from ocibuild.idspace.requests import RootFS
    from ocibuild.snapshot.base import Prepared


class Snapshotter(Protocol):
    """What the solver needs of snapshots. `layers` are bottom first; a Path among them
    is an earlier step's pending change directory (only where `stacks_pending`)."""

    materialized: int  # roots made so far (a cached rebuild makes none)
    # True: a step's change directory can be stacked by later steps before its layer is
    # written (pending_dir), and its root stays until the solve ends (release_all then).
    # False: the caller commits, then releases the root at once.
    stacks_pending: bool

    def warm(self) -> None:
        """A step will run: start what prepare and commit need, off the critical path."""
        ...

    def finish(self) -> None:
        """The build's work is done: finish what warm began that must not be left
        behind (deleting the step directories earlier builds left in the trash)."""
        ...

    def prepare(self, layers: Sequence[LayerRef | Path]) -> Prepared:
        """A fresh, writable root filesystem over `layers`."""
        ...

    def prepare_tree(self, layers: Sequence[LayerRef]) -> Prepared:
        """A root that is a plain directory (a RUN bind mount's source), released with
        `release`."""
        ...

    def source_view(self, layers: Sequence[LayerRef | Path]) -> tuple[RootFS,
                                                                        Prepared | None]:
        """A read-only view of `layers` as a file op reads a source: the root, and what
        to `release` once read (None: nothing)."""
        ...

    def reads_blob(self, layer: LayerRef) -> bool:
        """Whether prepare needs this layer's blob (not when it is extracted already)."""
        ...

    def pending_dir(self, prepared: Prepared) -> Path:
        """The directory later steps stack for this root's change (stacks_pending)."""
        ...

    def layer_progress(self, prepared: Prepared) -> Path | None:
        """A file `commit` keeps the bytes written so far in, for progress (None: none)."""
        ...

    def commit(self, prepared: Prepared, *, compression: str = "gzip",
               source_date_epoch: int | None = None,
               blob: bool = True) -> LayerRef | None:
        """The root's change written as a layer into the store (None: no change).
        `blob` False: no output needs the blob yet; a snapshotter that can keep the
        change as the layer's directory instead makes the blob later, when asked
        (cache.lazy_blobs)."""
        ...

    def release(self, prepared: Prepared) -> None: ...

    def release_all(self, prepared: Sequence[Prepared]) -> None: ...


def open_snapshotter(store: Store, kind: str = "auto", *, can_mount: bool = True) -> Snapshotter:
    """The snapshotter `kind` ("overlay", "native" or "auto": overlay where it mounts);
    `can_mount` False where steps cannot mount (a bare chroot): auto is native."""
    from ocibuild.snapshot.select import open_snapshotter as _open

    return _open(store, kind, can_mount=can_mount)


__all__ = ["LayerRef", "Snapshotter", "open_snapshotter"]
