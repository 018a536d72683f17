"""What both snapshotters share: Prepared, per-step directories, layer extraction."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibuild.oci import digest as _digest
from ocibuild.snapshot import LayerRef, userns

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.oci.layerinfo import LayerInfo
    from ocibuild.sandbox.spec import OverlayRoot


@dataclass(frozen=True)
class Prepared:
    """A step's root filesystem: `root` goes into sandbox.StepSpec.rootfs."""

    root: OverlayRoot | Path
    layers: tuple[LayerRef, ...]
    step_dir: Path  # everything of this step (upper/work or the copied tree)


def chain_id(diff_ids: Sequence[str]) -> str:
    """The OCI image-spec ChainID of a stack of layers."""
    chain = ""
    for diff_id in diff_ids:
        chain = diff_id if not chain else _digest.of_bytes(f"{chain} {diff_id}".encode())
    return chain


def new_step_dir(store: Store) -> Path:
    base = store.snapshots_dir / "steps"
    base.mkdir(exist_ok=True)
    from ocibuild.cache.temporaries import step_dir_name

    path = base / step_dir_name(store.root, uuid.uuid4().hex)  # its owner's name first
    path.mkdir(mode=0o700)
    return path


_extracting: dict[str, threading.Lock] = {}
_extracting_guard = threading.Lock()


def layer_dir(store: Store, ref: LayerRef) -> Path:
    """The overlay lower directory of `ref`, extracted now if it is not there yet (once:
    steps of one build that need the same layer wait for the first extraction)."""
    base = store.snapshots_dir / "layers"
    base.mkdir(exist_ok=True)
    dest = base / _digest.hex_of(ref.diff_id)
    if dest.is_dir():
        store.db.touch_snapshot(ref.diff_id)
        return dest
    with _extracting_guard:
        lock = _extracting.setdefault(str(dest), threading.Lock())
    with lock:
        return _extract_once(store, ref, dest)


def _extract_once(store: Store, ref: LayerRef, dest: Path) -> Path:
    if not dest.is_dir():
        result = userns.call("ocibuild.snapshot.layerdirs:extract_layer_dir", {
            "layout": str(store.layout.path), "dest": str(dest),
            "blob": ref.descriptor.digest, "size": ref.descriptor.size,
            "diff_id": ref.diff_id, "chown": userns.can_chown(),
            "host_root": os.geteuid() == 0,
        })
        if not result.get("existed"):
            store.db.touch_snapshot(ref.diff_id, int(result["size"]))
    else:
        store.db.touch_snapshot(ref.diff_id)
    return dest


def write_layer_in_userns(args: dict[str, Any]) -> dict[str, Any] | None:
    """(Runs under the sandbox's id mapping.) Write a layer into the layout from
    args["kind"]: "upper" (an overlay upper dir) or "changes" (a root plus a change list
    file); returns the LayerInfo as a dict, or None when there is no change."""
    from ocibuild.oci.layer import write_layer_from_changes, write_layer_from_overlay_upper
    from ocibuild.oci.layout import ImageLayout

    layout = ImageLayout(Path(args["layout"]))
    root = Path(args["root"])
    opts = {"compression": args["compression"], "source_date_epoch": args["sde"]}
    with layout.blob_writer() as w:
        if args["kind"] == "upper":
            if not any(os.scandir(root)):
                return None
            info = write_layer_from_overlay_upper(root, w, **opts)
        else:
            from ocibuild.snapshot.scan import changes_since

            changes = changes_since(root, Path(args["signatures"]))
            if not changes:
                return None
            info = write_layer_from_changes(root, changes, w, **opts)
        w.commit()
    return {"digest": info.digest, "diff_id": info.diff_id, "size": info.size,
            "media_type": info.media_type, "compression": info.compression}


def layer_info(data: dict[str, Any] | None) -> LayerInfo | None:
    from ocibuild.oci.layerinfo import LayerInfo

    return None if data is None else LayerInfo(**data)


def short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
