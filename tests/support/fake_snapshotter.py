"""An in-memory snapshotter for the solver's unit tests: no mounts, no namespaces.

A layer is a JSON object {path: text} stored as a real blob in the store (so records,
hits and --cache-from fetches behave as they do for real layers); a prepared root is a
plain directory holding the files of its layers, and a commit is what the step changed
in it. With `stacks_pending` it also plays overlay's part: a step's change directory is
stacked by later steps while its layer is written.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

from ocibuild.cache.store import Store
from ocibuild.idspace.requests import RootFS
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layerref import LayerRef
from ocibuild.snapshot.base import Prepared

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"


def files_of(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file()}


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


class MemorySnapshotter:
    def __init__(self, store: Store, work: Path, *, stacks_pending: bool = False) -> None:
        self.store = store
        self.work = work
        self.stacks_pending = stacks_pending
        self.materialized = 0
        self.warmed = 0
        self.live: set[Path] = set()  # step directories not released yet
        self.commits: list[Prepared] = []
        self._base: dict[Path, dict[str, str]] = {}
        self._lock = threading.Lock()

    # -- layers ---------------------------------------------------------------------------
    def layer(self, files: dict[str, str]) -> LayerRef:
        """A layer holding `files`, its blob in the store."""
        data = json.dumps(files, sort_keys=True).encode()
        digest = self.store.layout.put_bytes(data)
        return LayerRef(Descriptor(LAYER_MEDIA_TYPE, digest, len(data)), digest)

    def files(self, layers: Sequence[LayerRef | Path]) -> dict[str, str]:
        """The files of `layers` stacked, bottom first."""
        out: dict[str, str] = {}
        for layer in layers:
            if isinstance(layer, Path):
                out.update(files_of(layer))
            else:
                out.update(json.loads(self.store.layout.read_blob(layer.descriptor.digest)))
        return out

    # -- the Snapshotter protocol -----------------------------------------------------------
    def warm(self) -> None:
        self.warmed += 1

    def finish(self) -> None:
        pass

    def prepare(self, layers: Sequence[LayerRef | Path]) -> Prepared:
        if any(isinstance(layer, Path) for layer in layers) and not self.stacks_pending:
            raise TypeError("a pending directory given to a snapshotter that stacks none")
        with self._lock:
            self.materialized += 1
        return self._root(layers)

    def _root(self, layers: Sequence[LayerRef | Path]) -> Prepared:
        step = self.work / uuid.uuid4().hex
        (step / "root").mkdir(parents=True)
        base = self.files(layers)
        write_files(step / "root", base)
        with self._lock:
            self._base[step] = base
            self.live.add(step)
        return Prepared(RootFS.directory(step / "root"), tuple(layers), step)

    def prepare_tree(self, layers: Sequence[LayerRef]) -> Prepared:
        return self._root(layers)

    def source_view(self, layers: Sequence[LayerRef | Path]) -> tuple[RootFS,
                                                                        Prepared | None]:
        prepared = self._root(layers)
        return prepared.root, prepared

    def reads_blob(self, layer: LayerRef) -> bool:
        return True

    def _change(self, prepared: Prepared) -> dict[str, str]:
        base = self._base[prepared.step_dir]
        return {k: v for k, v in files_of(prepared.root.path).items() if base.get(k) != v}

    def layer_progress(self, prepared: Prepared) -> Path | None:
        return None

    def pending_dir(self, prepared: Prepared) -> Path:
        change = prepared.step_dir / "change"
        if not change.is_dir():
            change.mkdir()
            write_files(change, self._change(prepared))
        return change

    def commit(self, prepared: Prepared, *, compression: str = "gzip",
               source_date_epoch: int | None = None, blob: bool = True) -> LayerRef | None:
        with self._lock:
            self.commits.append(prepared)
        change = self._change(prepared)
        return self.layer(change) if change else None

    def release(self, prepared: Prepared) -> None:
        with self._lock:
            self.live.discard(prepared.step_dir)

    def release_all(self, prepared: Sequence[Prepared]) -> None:
        for p in prepared:
            self.release(p)
