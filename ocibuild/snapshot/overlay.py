"""The overlay snapshotter: lower = the layers' directories, a fresh upper per step."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.idspace import userns
from ocibuild.idspace.requests import RootFS
from ocibuild.oci.digest import chain_id
from ocibuild.oci.layerref import LayerRef
from ocibuild.snapshot import trash
from ocibuild.snapshot.base import (
    LAYER_PROGRESS,
    Prepared,
    WriteLayer,
    finish_userns,
    layer_dir,
    layer_ref,
    new_step_dir,
    warm_userns,
)

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.snapshot.trash import Emptying


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
    stacks_pending = True

    def __init__(self, store: Store) -> None:
        self.store = store
        self.materialized = 0
        self._emptying: Emptying | None = None
        self._lazy: dict[Path, tuple[LayerRef, int]] = {}  # step dir -> its layer, bytes
        self._lazy_lock = threading.Lock()

    def prepare(self, layers: Sequence[LayerRef | Path]) -> Prepared:
        """A fresh upper over `layers`; a Path among them is a directory that already
        holds that layer as overlayfs reads it (an earlier step's upper directory)."""
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
        return Prepared(RootFS.overlay(lowers, upper, work), tuple(layers), step)

    def warm(self) -> None:
        self._emptying = warm_userns(self.store)

    def finish(self) -> None:
        finish_userns(self._emptying)

    def prepare_tree(self, layers: Sequence[LayerRef]) -> Prepared:
        """A native copy: overlay roots are not plain directories."""
        from ocibuild.snapshot.native import NativeSnapshotter

        return NativeSnapshotter(self.store).prepare_tree(layers)

    def source_view(self, layers: Sequence[LayerRef | Path]) -> tuple[RootFS,
                                                                        Prepared | None]:
        """The layers' directories (or fresh steps' uppers): read-only needs no mount."""
        if not layers:
            step = new_step_dir(self.store)
            (step / "empty").mkdir(mode=0o755)
            empty = RootFS.directory(step / "empty")
            return empty, Prepared(empty, (), step)
        if any(not isinstance(s, Path) for s in layers):
            self.materialized += 1
        return RootFS.stack(lower_dirs(self.store, layers)), None

    def reads_blob(self, layer: LayerRef) -> bool:
        """An extracted layer's directory is read, never its blob again."""
        from ocibuild.oci import digest as _digest

        return not (self.store.snapshots_dir / "layers" / _digest.hex_of(layer.diff_id)
                    ).is_dir()

    def pending_dir(self, prepared: Prepared) -> Path:
        return prepared.step_dir / "upper"

    def layer_progress(self, prepared: Prepared) -> Path | None:
        return prepared.step_dir / LAYER_PROGRESS

    def commit(self, prepared: Prepared, *, compression: str = "gzip",
               source_date_epoch: int | None = None, blob: bool = True) -> LayerRef | None:
        """`blob` False: the layer is only hashed, and its upper directory becomes the
        layer's directory once the build is done with it (release), from which the
        store makes the blob when something reads it (cache.lazy_blobs)."""
        upper = prepared.step_dir / "upper"
        data = userns.request(WriteLayer(
            kind="upper", layout=str(self.store.layout.path), root=str(upper),
            signatures=None, compression=compression, source_date_epoch=source_date_epoch,
            keep=blob))
        tar_size = int(data.pop("tar_size", 0)) if data else 0
        layer = layer_ref(data)
        # a blob the store has or can make already (the same layer from another step):
        # this upper goes to the trash as any other
        if layer is None or blob or self.store.layout.has_blob(layer.descriptor.digest):
            return layer
        from ocibuild.cache.lazy_blobs import Marker, write_marker

        write_marker(self.store.root, layer.descriptor.digest, Marker(
            layer.diff_id, compression, source_date_epoch, prepared.step_dir.name, tar_size))
        with self._lazy_lock:
            self._lazy[prepared.step_dir] = (layer, tar_size)
        return layer

    def release(self, prepared: Prepared) -> None:
        """Into the store's trash (deleted while a later build runs steps); an upper
        directory that holds a layer whose blob was not written is kept as that
        layer's directory."""
        self._keep_layer_dirs([prepared])
        trash.discard(self.store, [prepared.step_dir])

    def release_all(self, prepared: Sequence[Prepared]) -> None:
        self._keep_layer_dirs(prepared)
        trash.discard(self.store, [p.step_dir for p in prepared])

    def _keep_layer_dirs(self, prepared: Sequence[Prepared]) -> None:
        for p in prepared:
            with self._lazy_lock:
                kept = self._lazy.pop(p.step_dir, None)
            if kept is not None:
                keep_upper(self.store, p.step_dir, *kept)


def keep_upper(store: Store, step_dir: Path, layer: LayerRef, tar_size: int) -> None:
    """Make the step's upper directory `layer`'s directory (what lower_dirs stacks for
    it from now on). Where it cannot (the store has that directory already, made from a
    blob; an upper a step made unmovable), the blob is written now instead."""
    from ocibuild.cache.lazy_blobs import keep_upper as move_upper

    if move_upper(store.root, step_dir, layer.diff_id):
        store.db.touch_snapshot(layer.diff_id, tar_size)
    else:
        store.layout.ensure_blob(layer.descriptor.digest)
