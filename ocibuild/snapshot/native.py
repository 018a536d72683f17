"""The native snapshotter, for where overlayfs cannot be mounted.

The parent's tree (all layers applied in order) is kept once per ChainID in
ROOT/snapshots/chains/<hex>; each step gets a real copy of it (`cp -a --reflink=never`:
owners, modes, xattrs, devices and hard links within the tree kept, nothing shared
with the kept tree), and its change is found by comparing stat signatures (scan.py).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibuild.errors import OcibuildError
from ocibuild.oci import digest as _digest
from ocibuild.oci.layerinfo import LayerInfo
from ocibuild.snapshot import LayerRef, trash, userns
from ocibuild.snapshot.base import Prepared, chain_id, layer_info, new_step_dir

if TYPE_CHECKING:
    from ocibuild.cache.store import Store


def _copy_tree(src: Path, dest: Path) -> None:
    dest.mkdir(mode=0o755, exist_ok=True)
    proc = subprocess.run(["cp", "-a", "--reflink=never", "--", f"{src}/.", str(dest)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise OcibuildError(f"cannot copy {src} to {dest}: {proc.stderr.strip()}")


def prepare_in_userns(args: dict[str, Any]) -> dict[str, Any]:
    """(Runs under the sandbox's id mapping.) Make the chain directories that are
    missing, copy the top one to args["root"] and save its signatures."""
    from ocibuild.oci.extract import apply_layer
    from ocibuild.oci.layout import ImageLayout
    from ocibuild.snapshot.layerdirs import tree_size
    from ocibuild.snapshot.scan import save_signatures

    layout = ImageLayout(Path(args["layout"]))
    chains = Path(args["chains"])
    made: list[list[Any]] = []
    parent: Path | None = None
    for item in args["layers"]:
        dest = chains / _digest.hex_of(item["chain"])
        if not dest.is_dir():
            tmp = chains / f".tmp-{dest.name}-{uuid.uuid4().hex[:8]}"
            try:
                if parent is not None:
                    _copy_tree(parent, tmp)
                else:
                    tmp.mkdir(mode=0o755)
                with layout.open_blob(item["blob"], item["size"]) as blob:
                    apply_layer(blob, tmp, chown=args["chown"])  # type: ignore[arg-type]
                try:
                    os.rename(tmp, dest)
                    made.append([item["chain"], tree_size(dest)])
                except OSError:
                    if not dest.is_dir():
                        raise
            finally:
                userns.remove_local(tmp)
        parent = dest
    root = Path(args["root"])
    if parent is None:
        root.mkdir(mode=0o755)
    else:
        _copy_tree(parent, root)
    save_signatures(root, Path(args["signatures"]))
    return {"made": made}


class NativeSnapshotter:
    kind = "native"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.materialized = 0

    def prepare(self, layers: Sequence[LayerRef]) -> Prepared:
        self.materialized += 1
        chains = self.store.snapshots_dir / "chains"
        chains.mkdir(exist_ok=True)
        step = new_step_dir(self.store)
        items = []
        for i, ref in enumerate(layers):
            items.append({"chain": chain_id([r.diff_id for r in layers[:i + 1]]),
                          "blob": ref.descriptor.digest, "size": ref.descriptor.size})
        result = userns.call("ocibuild.snapshot.native:prepare_in_userns", {
            "layout": str(self.store.layout.path), "chains": str(chains), "layers": items,
            "root": str(step / "root"), "signatures": str(step / "signatures"),
            "chown": userns.can_chown(),
        })
        for chain, size in result["made"]:
            self.store.db.touch_snapshot(f"chain:{chain}", int(size))
        for item in items:
            self.store.db.touch_snapshot(f"chain:{item['chain']}")
        return Prepared(step / "root", tuple(layers), step)

    def commit(self, prepared: Prepared, *, compression: str = "gzip",
               source_date_epoch: int | None = None) -> LayerInfo | None:
        return layer_info(userns.call("ocibuild.snapshot.base:write_layer_in_userns", {
            "kind": "changes", "layout": str(self.store.layout.path),
            "root": str(prepared.step_dir / "root"),
            "signatures": str(prepared.step_dir / "signatures"),
            "compression": compression, "sde": source_date_epoch,
        }))

    def release(self, prepared: Prepared) -> None:
        """Into the store's trash (deleted while a later build runs steps)."""
        trash.discard(self.store, [prepared.step_dir])

    def release_all(self, prepared: Sequence[Prepared]) -> None:
        trash.discard(self.store, [p.step_dir for p in prepared])
