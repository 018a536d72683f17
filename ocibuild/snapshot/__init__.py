"""Snapshots: layers extracted once per diffID, and root filesystems for steps made of them.

Two snapshotters share one interface: `overlay` (an overlay mount of the extracted
layers with a fresh upper directory; the upper directory is the step's change) and
`native` (a real copy of the parent tree; the change is found by a stat-signature scan).
Both give the same layer bytes for the same change.

Interface besides open_snapshotter/Snapshotter/LayerRef (the solver uses these too):
- `snapshot.base.layer_dir(store, ref) -> Path`: a layer extracted once as an overlay
  lower directory (read-only sources for COPY --from);
- `snapshot.base.write_layer_in_userns(args)`: a layer blob from an upper directory or a
  change list, run under the sandbox mapping;
- `snapshot.userns.session()`, `call()`, `call_isolated()`: functions run under the
  sandbox mapping, through one file-op server per build (`snapshot.worker`);
- `OverlaySnapshotter.prepare` also stacks ready directories (an earlier step's upper);
  both snapshotters have `release_all(prepared_list)`.
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


def open_snapshotter(store: Store, kind: str = "auto", *, can_mount: bool = True) -> Snapshotter:
    """The snapshotter `kind` ("overlay", "native" or "auto": overlay where it mounts);
    `can_mount` False where steps cannot mount (a bare chroot): auto is native."""
    from ocibuild.snapshot.select import open_snapshotter as _open

    return _open(store, kind, can_mount=can_mount)


__all__ = ["LayerRef", "Snapshotter", "open_snapshotter"]
