from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.snapshot.scenario import CHANGES, run
from tests.support.paths import REPO, VENV_BIN
from tests.support.users import User

KINDS = ["overlay", "native"]


def _check(out: dict[str, Any]) -> None:
    layers = out["layers"]
    for name in CHANGES:
        assert layers[f"overlay/{name}"] == layers[f"native/{name}"], name
    entries = {name: {e[0]: e for e in (layers[f"overlay/{name}"] or {}).get("entries", [])}
               for name in CHANGES}
    assert layers["overlay/nothing"] is None
    assert {"data/added", "data/newdir/sub/f"} <= set(entries["add"])
    assert "data/.wh.old" in entries["delete"] and "data/.wh.tree" in entries["delete"]
    assert "data/tree/a" not in entries["delete"]
    assert "data/tree/.wh..wh..opq" in entries["opaque"]
    assert "data/tree/only" in entries["opaque"]
    assert entries["chmod"]["data/file"][2] == 0o600
    assert entries["chmod"]["data/file"][3:] == [1000, 1000]  # owner kept through the map
    assert entries["symlink"]["data/link"][1] == "2"
    assert entries["chown"]["data/root-owned"][3:] == [1000, 1000]
    assert entries["modify"]["data/file"][3:] == [1000, 1000]
    assert out["owners"] == {"overlay": "1000:1000", "native": "1000:1000"}
    assert out["leftover_steps"] == []


def test_both_snapshotters_give_identical_layers_as_root(base_layers: Path,
                                                         tmp_path: Path) -> None:
    out = run(tmp_path / "store", base_layers, KINDS)
    _check(out)
    # each layer extracted once for the whole run, keyed by diffID
    diff_ids = [x["diff_id"] for x in json.loads((base_layers / "layers.json").read_text())]
    assert out["snapshots"] == sorted(d.split(":")[1] for d in diff_ids)


def test_both_snapshotters_give_identical_layers_unprivileged(
        base_layers: Path, sub_user: User, sub_tmp: Path) -> None:
    proc = sub_user.run([VENV_BIN / "python", "-m", "tests.snapshot.scenario",
                         sub_tmp / "store", base_layers, *KINDS], cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check(json.loads(proc.stdout))
    # on disk, the image's uid 1000 is the mapped subordinate id (200000 + 1000 - 1)
    layers_dir = sub_tmp / "store" / "snapshots" / "layers"
    data_dir = next(p for p in layers_dir.iterdir() if (p / "data").is_dir())
    assert os.lstat(data_dir / "data" / "file").st_uid == 200999
    assert os.lstat(data_dir / "data").st_uid == sub_user.uid
    # and the unprivileged user can remove what its subordinate ids own
    prune = sub_user.run([VENV_BIN / "ocibuild", "--root", sub_tmp / "store", "cache", "prune",
                          "--all"])
    assert prune.returncode == 0, prune.stderr
    assert list(layers_dir.iterdir()) == []


@pytest.mark.parametrize("kind", KINDS)
def test_prepare_of_an_unchanged_step_reuses_extracted_layers(base_layers: Path, tmp_path: Path,
                                                              kind: str) -> None:
    from ocibuild.cache import Store
    from ocibuild.snapshot import open_snapshotter
    from tests.snapshot.scenario import load_base

    store = Store.open(tmp_path)
    layers = load_base(store, base_layers)
    snap = open_snapshotter(store, kind)
    first = snap.prepare(layers)
    snap.release(first)
    marker = store.snapshots_dir / ("layers" if kind == "overlay" else "chains")
    before = {p.name: p.stat().st_ino for p in marker.iterdir()}
    second = snap.prepare(layers)
    assert snap.commit(second) is None
    snap.release(second)
    assert {p.name: p.stat().st_ino for p in marker.iterdir()} == before
    assert snap.materialized == 2
    assert not second.step_dir.exists()
