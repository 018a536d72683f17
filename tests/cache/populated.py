"""A store holding one of each kind of cache item (for store tests)."""

from __future__ import annotations

from pathlib import Path

from ocibuild.cache import CacheRecord, Store
from ocibuild.snapshot import open_snapshotter
from tests.support.store_images import layer_from_dir, result_from_layers, write_tree


def populated(tmp_path: Path) -> tuple[Store, dict[str, str]]:
    """A tagged image (whose layers have records and an extracted snapshot), an untagged
    record with its own layer, and a cache mount."""
    from ocibuild.exporter import export

    store = Store.open(tmp_path / "store")
    tagged = layer_from_dir(store, write_tree(tmp_path / "a", {"etc/a": "a"}))
    stray = layer_from_dir(store, write_tree(tmp_path / "b", {"b": "b" * 5000}))
    report = export(result_from_layers([tagged]), [], store, tags=["busybox"])
    now = "2024-01-01T00:00:00Z"
    store.put_record(CacheRecord("k-tagged", tagged.descriptor, tagged.diff_id, now,
                                 "[1/1] COPY a", {}))
    store.put_record(CacheRecord("k-stray", stray.descriptor, stray.diff_id, now,
                                 "[1/1] RUN b", {}))
    snap = open_snapshotter(store, "overlay")
    snap.release(snap.prepare([tagged, stray]))
    with store.cache_mount("/root/.cache", "shared") as path:
        (path / "big").write_bytes(b"x" * 100_000)
    return store, {"manifest": report.manifest_digest, "tagged": tagged.descriptor.digest,
                   "stray": stray.descriptor.digest, "tagged_diff": tagged.diff_id,
                   "stray_diff": stray.diff_id}
