"""The overlay snapshotter: lower = the layers' directories, a fresh upper per step."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.snapshot import LayerRef, trash, userns
from ocibuild.snapshot.base import (
    Prepared,
    chain_id,
    layer_dir,
    layer_info,
    new_step_dir,
)

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.oci.layerinfo import LayerInfo


def distinct_lowers(lowers: Sequence[Path]) -> list[Path]:
    """`lowers` (bottom first) with each directory kept only at its topmost position.

    overlayfs refuses a directory listed twice (ELOOP). Dropping the lower occurrence of a
    repeated layer changes nothing: all the layer holds (files and whiteouts) comes from
    its upper occurrence anyway, and what it does not hold it never affected."""
    seen: set[Path] = set()
    kept: list[Path] = []
    for path in reversed(lowers):
        if path not in seen:
            seen.add(path)
            kept.append(path)
    return kept[::-1]


def lower_dirs(store: Store, layers: Sequence[LayerRef | Path]) -> list[Path]:
    """The directories of `layers` (bottom first; a Path is one already) as overlayfs
    stacks them, each layer extracted knowing the directories under it."""
    dirs: list[Path] = []
    diff_ids: list[str] | None = []  # None once a Path (no ChainID) is below
    for ref in layers:
        if isinstance(ref, Path):
            dirs.append(ref)
            diff_ids = None
            continue
        chain = None
        if diff_ids is not None:
            diff_ids.append(ref.diff_id)
            chain = chain_id(diff_ids)
        dirs.append(layer_dir(store, ref, distinct_lowers(dirs) if chain else (), chain))
    return dirs


class OverlaySnapshotter:
    kind = "overlay"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.materialized = 0

    def prepare(self, layers: Sequence[LayerRef | Path]) -> Prepared:
        """A fresh upper over `layers`; a Path among them is a directory that already
        holds that layer as overlayfs reads it (an earlier step's upper directory)."""
        from ocibuild.sandbox.spec import OverlayRoot

        self.materialized += 1
        lowers = distinct_lowers(lower_dirs(self.store, layers))
        step = new_step_dir(self.store)
        upper, work = step / "upper", step / "work"
        upper.mkdir(mode=0o755)
        work.mkdir(mode=0o700)
        if not lowers:  # FROM scratch: overlayfs needs one lower directory
            empty = step / "empty"
            empty.mkdir(mode=0o755)
            lowers = [empty]
        return Prepared(OverlayRoot(tuple(lowers), upper, work), tuple(layers), step)

    def commit(self, prepared: Prepared, *, compression: str = "gzip",
               source_date_epoch: int | None = None) -> LayerInfo | None:
        upper = prepared.step_dir / "upper"
        return layer_info(userns.call("ocibuild.snapshot.base:write_layer_in_userns", {
            "kind": "upper", "layout": str(self.store.layout.path), "root": str(upper),
            "compression": compression, "sde": source_date_epoch,
        }))

    def release(self, prepared: Prepared) -> None:
        """Into the store's trash (deleted while a later build runs steps)."""
        trash.discard(self.store, [prepared.step_dir])

    def release_all(self, prepared: Sequence[Prepared]) -> None:
        trash.discard(self.store, [p.step_dir for p in prepared])
