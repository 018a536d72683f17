"""What both snapshotters share: Prepared, per-step directories, layer extraction."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibuild.deferred import deferred_dataclass
from ocibuild.idspace import userns
from ocibuild.idspace.requests import Request, RootFS, handler, request_type
from ocibuild.oci import digest as _digest
from ocibuild.oci.layerref import LayerRef
from ocibuild.snapshot.spread import spread_children

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.snapshot.trash import Emptying


@deferred_dataclass(frozen=True)
class Prepared:
    """A step's root filesystem: `root` goes into sandbox.StepSpec.rootfs."""

    root: RootFS  # an overlay (overlay snapshotter) or a plain directory (native)
    layers: tuple[LayerRef | Path, ...]  # a Path: a pending change directory
    step_dir: Path  # everything of this step (upper/work or the copied tree)


def new_step_dir(store: Store) -> Path:
    base = store.snapshots_dir / "steps"
    base.mkdir(exist_ok=True)
    spread_children(base)
    from ocibuild.cache.temporaries import step_dir_name

    path = base / step_dir_name(store.root, os.urandom(16).hex())  # its owner's name first
    path.mkdir(mode=0o700)
    return path


_extracting: dict[str, threading.Lock] = {}
_extracting_guard = threading.Lock()


def layer_dir(store: Store, ref: LayerRef, below: Sequence[Path] = (),
              chain: str | None = None) -> Path:
    """The overlay lower directory of `ref`, extracted now if it is not there yet (once:
    steps of one build that need the same layer wait for the first extraction).

    `below` (the lower directories under it, bottom first) and `chain` (its ChainID):
    a layer that lacks directories its entries are below depends on the layers under
    it (layerdirs.py); such a layer, on top of others, has a directory per ChainID."""
    from ocibuild.snapshot.layerdirs import implies_dirs

    base = store.snapshots_dir / "layers"
    base.mkdir(exist_ok=True)
    spread_children(base)
    dest = base / _digest.hex_of(ref.diff_id)
    if dest.is_dir() and not (below and implies_dirs(dest)):
        touch_snapshot(store, ref.diff_id, dest)
        return dest
    chain_dest = base / _digest.hex_of(chain) if below and chain else None
    if chain_dest is not None and chain_dest.is_dir():
        touch_snapshot(store, chain, chain_dest)  # type: ignore[arg-type]
        return chain_dest
    with _extracting_guard:
        lock = _extracting.setdefault(str(chain_dest or dest), threading.Lock())
    with lock:
        return _extract_once(store, ref, dest, below if chain_dest else (), chain_dest, chain)


def _extract_once(store: Store, ref: LayerRef, dest: Path, below: Sequence[Path],
                  chain_dest: Path | None, chain: str | None) -> Path:
    if chain_dest is not None and chain_dest.is_dir():  # made while this one waited
        touch_snapshot(store, chain, chain_dest)  # type: ignore[arg-type]
        return chain_dest
    from ocibuild.snapshot.layerdirs import ExtractLayerDir, implies_dirs

    if dest.is_dir() and not (below and implies_dirs(dest)):
        touch_snapshot(store, ref.diff_id, dest)
        return dest
    store.layout.ensure_blob(ref.descriptor.digest)
    result = userns.request(ExtractLayerDir(
        layout=str(store.layout.path), dest=str(dest),
        chain_dest=str(chain_dest) if chain_dest else None,
        below=tuple(str(p) for p in below),
        blob=ref.descriptor.digest, size=ref.descriptor.size,
        diff_id=ref.diff_id, chown=userns.can_chown(), host_root=os.geteuid() == 0))
    made = Path(result["dest"])
    key = ref.diff_id if made == dest else chain
    if not result.get("existed"):
        store.db.touch_snapshot(key, int(result["size"]))  # type: ignore[arg-type]
    else:
        touch_snapshot(store, key, made)  # type: ignore[arg-type]
    return made


def touch_snapshot(store: Store, key: str, path: Path) -> None:
    """Mark an extracted directory used. One that a killed build made but never got to
    record is recorded now, or neither `cache du` nor `cache prune` would see it."""
    if not store.db.touch_snapshot(key):
        from ocibuild.cache import temporaries

        store.db.touch_snapshot(key, temporaries.size([path]))


LAYER_PROGRESS = "layer-progress"  # in a step directory, beside its upper


@request_type
class WriteLayer(Request[dict[str, Any] | None]):
    """A layer blob into the layout at `layout`, from `root`: an overlay upper
    directory (`kind` "upper"), or a root whose change is found against the stat
    signatures saved in `signatures` (`kind` "changes"). `keep` false: the layer is
    made and hashed but not kept (an upper the store keeps instead: cache.lazy_blobs)."""

    finishes_on_signal = True  # the layer of a step the build already reported done
    stateless = True
    kind: str
    layout: str
    root: str
    signatures: str | None
    compression: str
    source_date_epoch: int | None
    keep: bool


class _Discard:
    """Where a layer that is only hashed goes."""

    def write(self, data: bytes) -> int:
        return len(data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def commit(self) -> None:
        pass

    def __enter__(self) -> _Discard:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@handler(WriteLayer)
def write_layer_in_userns(args: WriteLayer) -> dict[str, Any] | None:
    """(Runs under the sandbox's id mapping.) The layer written; returns the LayerInfo
    as a dict, or None when there is no change."""
    from ocibuild.oci.layer import write_layer_from_changes, write_layer_from_overlay_upper
    from ocibuild.oci.layout import ImageLayout

    layout = ImageLayout(Path(args.layout))
    root = Path(args.root)
    opts = {"compression": args.compression, "source_date_epoch": args.source_date_epoch}
    with (layout.blob_writer() if args.keep else _Discard()) as w:
        if args.kind == "upper":
            if not any(os.scandir(root)):
                return None
            from ocibuild.oci.layerstream import progress_file

            # beside the upper: the solver shows it while it waits for the layer
            with progress_file(str(root.parent / LAYER_PROGRESS)):
                info = write_layer_from_overlay_upper(root, w, **opts)
        else:
            from ocibuild.snapshot.scan import changes_since

            changes = changes_since(root, Path(args.signatures or ""))
            if not changes:
                return None
            info = write_layer_from_changes(root, changes, w, **opts)
        w.commit()
    return {"digest": info.digest, "diff_id": info.diff_id, "size": info.size,
            "media_type": info.media_type, "compression": info.compression,
            "tar_size": info.tar_size}


def layer_ref(data: dict[str, Any] | None) -> LayerRef | None:
    """The layer write_layer_in_userns wrote."""
    from ocibuild.oci.layerinfo import LayerInfo

    if data is None:
        return None
    info = LayerInfo(**data)
    return LayerRef(info.descriptor(), info.diff_id)


def warm_userns(store: Store) -> Emptying | None:
    """Start the file-op server while the first steps run; empty earlier builds' step
    directories meanwhile (what finish() waits for)."""
    from ocibuild.snapshot import trash

    userns.warm()
    return trash.empty_in_background(store)


def finish_userns(emptying: Emptying | None) -> None:
    """The build's work is done: what warm_userns began deleting, deleted."""
    from ocibuild.snapshot import trash

    trash.finish_emptying(emptying)


def short(text: str) -> str:
    return _digest.hex_of_bytes(text.encode())[:16]
