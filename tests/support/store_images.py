"""Real layers and images in an ocibuild Store, made from directories (for store tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ocibuild.cache import Store
from ocibuild.exporter import BuildResult
from ocibuild.oci.config import History, ImageConfig
from ocibuild.oci.layer import write_layer_from_dir
from ocibuild.oci.layerref import LayerRef
from ocibuild.oci.platform import host

SDE = 1_700_000_000


def layer_from_dir(store: Store, root: Path, compression: str = "gzip") -> LayerRef:
    with store.layout.blob_writer() as w:
        info = write_layer_from_dir(root, w, compression=compression, source_date_epoch=SDE)
        w.commit()
    return LayerRef(info.descriptor(), info.diff_id)


def result_from_layers(layers: Sequence[LayerRef], **config: object) -> BuildResult:
    plat = host()
    cfg = ImageConfig(plat.architecture, plat.os, plat.variant,
                      created="2023-11-14T22:13:20Z", config=dict(config),
                      diff_ids=tuple(r.diff_id for r in layers),
                      history=tuple(History(created_by=f"layer {i}") for i in range(len(layers))))
    return BuildResult(cfg, tuple(layers))


def write_tree(root: Path, files: dict[str, str | None]) -> Path:
    """Create `root` with `files` (path -> content; None makes a directory)."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        p = root / rel
        if content is None:
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content)
    return root
