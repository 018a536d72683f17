"""Run the same filesystem changes under each snapshotter and report the layers.

Used in-process (as root) and as `python -m tests.snapshot.scenario STORE BASE KINDS...`
by the unprivileged test user; prints JSON.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

from ocibuild.cache import Store
from ocibuild.oci.compression import open_uncompressed
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layerref import LayerRef
from ocibuild.sandbox import StepSpec, run_step
from ocibuild.snapshot import open_snapshotter

SDE = 1_700_000_000

# name -> shell command run in the step; each starts from the same base image
CHANGES: dict[str, str] = {
    "add": "echo new > /data/added && mkdir -p /data/newdir/sub && echo x > /data/newdir/sub/f",
    "modify": "echo more >> /data/file",
    "delete": "rm /data/old && rm -r /data/tree",
    "opaque": "rm -rf /data/tree && mkdir /data/tree && echo fresh > /data/tree/only",
    "chmod": "chmod 600 /data/file && chmod 700 /data/tree",
    "symlink": "ln -s /data/file /data/link && ln -sf /etc/passwd /data/oldlink",
    "chown": "chown 1000:1000 /data/root-owned",
    "nothing": "cat /data/file > /dev/null",
}


def load_base(store: Store, base: Path) -> list[LayerRef]:
    refs = []
    for item in json.loads((base / "layers.json").read_text()):
        with open(base / item["file"], "rb") as f:
            store.layout.put_stream(f, expected_digest=item["digest"])
        refs.append(LayerRef(Descriptor(item["media_type"], item["digest"], item["size"]),
                             item["diff_id"]))
    return refs


def layer_entries(store: Store, digest: str) -> list[list[Any]]:
    with store.layout.open_blob(digest) as blob:
        data = open_uncompressed(blob).read()  # type: ignore[arg-type]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [[m.name, m.type.decode(), m.mode, m.uid, m.gid] for m in tar.getmembers()]


def run(store_root: Path, base: Path, kinds: list[str]) -> dict[str, Any]:
    store = Store.open(store_root)
    layers = load_base(store, base)
    out: dict[str, Any] = {"layers": {}, "owners": {}}
    for kind in kinds:
        snap = open_snapshotter(store, kind)
        for name, command in CHANGES.items():
            prepared = snap.prepare(layers)
            lines: list[bytes] = []
            try:
                result = run_step(StepSpec(rootfs=prepared.root, argv=["/bin/sh", "-c", command]),
                                  on_stdout=lines.append, on_stderr=lines.append)
                if not result.ok:
                    raise RuntimeError(f"{kind} {name}: {result} {b''.join(lines)!r}")
                layer = snap.commit(prepared, source_date_epoch=SDE)
            finally:
                snap.release(prepared)
            out["layers"][f"{kind}/{name}"] = None if layer is None else {
                "digest": layer.descriptor.digest,
                "entries": layer_entries(store, layer.descriptor.digest)}
        # the owner a step sees for a file that is uid 1000 in the image
        prepared = snap.prepare(layers)
        lines = []
        try:
            run_step(StepSpec(rootfs=prepared.root,
                              argv=["/bin/sh", "-c", "stat -c '%u:%g' /data/file"]),
                     on_stdout=lines.append, on_stderr=lines.append)
        finally:
            snap.release(prepared)
        out["owners"][kind] = b"".join(lines).decode().strip()
        out["materialized"] = out.get("materialized", 0) + snap.materialized
    out["snapshots"] = sorted(p.name for p in (store.snapshots_dir / "layers").iterdir()) \
        if (store.snapshots_dir / "layers").is_dir() else []
    out["leftover_steps"] = os.listdir(store.snapshots_dir / "steps")
    return out


if __name__ == "__main__":
    print(json.dumps(run(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])))
