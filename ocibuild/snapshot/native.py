"""The native snapshotter, for where overlayfs cannot be mounted.

The parent's tree (all layers applied in order) is kept once per ChainID in
ROOT/snapshots/chains/<hex>; each step gets a real copy of it (`cp -a --reflink=never`:
owners, modes, xattrs, devices and hard links within the tree kept, nothing shared
with the kept tree), and its change is found by comparing stat signatures (scan.py).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibuild.atomic import writer_prefix
from ocibuild.errors import OcibuildError
from ocibuild.idspace import userns
from ocibuild.idspace.requests import Request, RootFS, field_type, handler, request_type
from ocibuild.oci import digest as _digest
from ocibuild.oci.digest import chain_id
from ocibuild.oci.layerref import LayerRef
from ocibuild.snapshot import trash
from ocibuild.snapshot.base import (
    Prepared,
    WriteLayer,
    finish_userns,
    layer_ref,
    new_step_dir,
    touch_snapshot,
    warm_userns,
)
from ocibuild.snapshot.spread import spread_children

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.snapshot.trash import Emptying

DISK_FULL_TEXT = os.strerror(errno.ENOSPC)


def _copy_tree(src: Path, dest: Path) -> None:
    dest.mkdir(mode=0o755, exist_ok=True)
    import subprocess  # here: only the native snapshotter's copies of a root run cp

    proc = subprocess.run(["cp", "-a", "--reflink=never", "--", f"{src}/.", str(dest)],
                          capture_output=True, text=True)
    if proc.returncode != 0:  # cp says it once per file: the first line is enough
        lines = proc.stderr.strip().splitlines() or [f"cp exited with {proc.returncode}"]
        full = next((line for line in lines if line.endswith(DISK_FULL_TEXT)), None)
        reason = DISK_FULL_TEXT if full is not None else lines[0]
        raise OcibuildError(f"cannot copy {src} to {dest}: {reason}")


@field_type
class ChainLayer:
    """A layer of a chain: its blob (`blob`, `size` bytes) and the ChainID up to it."""

    chain: str
    blob: str
    size: int


@request_type
class PrepareNative(Request[dict[str, Any]]):
    """A native root at `root` over `layers` (bottom first), with its stat signatures
    saved in `signatures`; the chain directories missing under `chains` made first."""

    layout: str
    chains: str
    layers: tuple[ChainLayer, ...]
    root: str
    signatures: str
    chown: bool


@handler(PrepareNative)
def prepare_in_userns(args: PrepareNative) -> dict[str, Any]:
    """(Runs under the sandbox's id mapping.) Returns {"made": [[chain, size], ...]} and,
    when the root could not be made, "error" (the chains made stay: they must be
    recorded)."""
    from ocibuild.idspace.userns import tree_size
    from ocibuild.oci.extract import apply_layer
    from ocibuild.oci.layout import ImageLayout
    from ocibuild.snapshot.scan import save_signatures

    layout = ImageLayout(Path(args.layout))
    chains = Path(args.chains)
    made: list[list[Any]] = []
    parent: Path | None = None
    for item in args.layers:
        dest = chains / _digest.hex_of(item.chain)
        if not dest.is_dir():
            tmp = chains / f"{writer_prefix()}{dest.name}-{os.urandom(4).hex()}"
            try:
                if parent is not None:
                    _copy_tree(parent, tmp)
                else:
                    tmp.mkdir(mode=0o755)
                with layout.open_blob(item.blob, item.size) as blob:
                    apply_layer(blob, tmp, chown=args.chown)  # type: ignore[arg-type]
                try:
                    os.rename(tmp, dest)
                    made.append([item.chain, tree_size(dest)])
                except OSError:
                    if not dest.is_dir():
                        raise
            finally:
                userns.remove_local(tmp)
        parent = dest
    root = Path(args.root)
    try:
        if parent is None:
            root.mkdir(mode=0o755)
        else:
            _copy_tree(parent, root)
        save_signatures(root, Path(args.signatures))
    except (OcibuildError, OSError) as exc:  # the chains made stay: they must be recorded
        return {"made": made, "error": exc.message if isinstance(exc, OcibuildError)
                else f"{exc.filename}: {exc.strerror}"}
    return {"made": made}


class NativeSnapshotter:
    stacks_pending = False

    def __init__(self, store: Store) -> None:
        self.store = store
        self.materialized = 0
        self._emptying: Emptying | None = None

    def prepare(self, layers: Sequence[LayerRef | Path]) -> Prepared:
        refs = [ref for ref in layers if isinstance(ref, LayerRef)]
        if len(refs) != len(layers):
            raise TypeError("native roots stack no pending directories (stacks_pending)")
        self.materialized += 1
        chains = self.store.snapshots_dir / "chains"
        chains.mkdir(exist_ok=True)
        spread_children(chains)
        step = new_step_dir(self.store)
        items = tuple(ChainLayer(chain_id([r.diff_id for r in refs[:i + 1]]),
                                 ref.descriptor.digest, ref.descriptor.size)
                      for i, ref in enumerate(refs))
        for item in items:  # a layer the store kept as a directory: its blob now
            if not (chains / _digest.hex_of(item.chain)).is_dir():
                self.store.layout.ensure_blob(item.blob)
        try:
            result = userns.request(PrepareNative(
                layout=str(self.store.layout.path), chains=str(chains), layers=items,
                root=str(step / "root"), signatures=str(step / "signatures"),
                chown=userns.can_chown()))
            self._record_chains(chains, result["made"])
            if "error" in result:
                raise OcibuildError(result["error"])
            for item in items:
                touch_snapshot(self.store, f"chain:{item.chain}",
                               chains / _digest.hex_of(item.chain))
        except BaseException:
            trash.discard(self.store, [step])  # the failed build frees it before it exits
            raise
        return Prepared(RootFS.directory(step / "root"), tuple(layers), step)

    def _record_chains(self, chains: Path, made: list[list[Any]]) -> None:
        """Record the chain directories just made; those the database cannot take (a
        full disk) are removed, or neither du nor prune would ever see them."""
        for i, (chain, size) in enumerate(made):
            try:
                self.store.db.touch_snapshot(f"chain:{chain}", int(size))
            except BaseException:
                userns.remove_trees([chains / _digest.hex_of(c) for c, _ in made[i:]])
                raise

    def warm(self) -> None:
        self._emptying = warm_userns(self.store)

    def finish(self) -> None:
        finish_userns(self._emptying)

    def prepare_tree(self, layers: Sequence[LayerRef]) -> Prepared:
        return self.prepare(layers)

    def source_view(self, layers: Sequence[LayerRef | Path]) -> tuple[RootFS,
                                                                        Prepared | None]:
        prepared = self.prepare(layers)
        return prepared.root, prepared

    def reads_blob(self, layer: LayerRef) -> bool:
        return True

    def pending_dir(self, prepared: Prepared) -> Path:
        raise NotImplementedError("the native snapshotter does not stack pending layers")

    def layer_progress(self, prepared: Prepared) -> Path | None:
        return None

    def commit(self, prepared: Prepared, *, compression: str = "gzip",
               source_date_epoch: int | None = None, blob: bool = True) -> LayerRef | None:
        """Always the blob: the next step's tree is made from it."""
        return layer_ref(userns.request(WriteLayer(
            kind="changes", layout=str(self.store.layout.path),
            root=str(prepared.step_dir / "root"),
            signatures=str(prepared.step_dir / "signatures"),
            compression=compression, source_date_epoch=source_date_epoch, keep=True)))

    def release(self, prepared: Prepared) -> None:
        """Into the store's trash (deleted while a later build runs steps)."""
        trash.discard(self.store, [prepared.step_dir])

    def release_all(self, prepared: Sequence[Prepared]) -> None:
        trash.discard(self.store, [p.step_dir for p in prepared])
