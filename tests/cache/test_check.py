"""`ocibuild cache check [--repair]` on damage planted in a store."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from ocibuild.cache import CacheRecord, Store
from ocibuild.oci import digest as _digest
from ocibuild.oci.image import load_image
from tests.cache.populated import populated
from tests.support.paths import OCIBUILD

BUSYBOX = "docker.io/library/busybox:latest"


def _check(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(OCIBUILD), "--root", str(root), "cache", "check", *args],
                          capture_output=True, text=True, timeout=120)


def _problems(out: subprocess.CompletedProcess[str]) -> list[str]:
    """The problem lines (not the summary, nor the note about the trash)."""
    return [line for line in out.stdout.splitlines()[:-1] if not line.startswith("trash:")]


def test_a_store_in_good_order_checks_clean(tmp_path: Path) -> None:
    store, _ = populated(tmp_path)
    out = _check(store.root)
    assert out.returncode == 0, out.stdout + out.stderr
    assert _problems(out) == []
    assert out.stdout.splitlines()[-1].startswith("store is clean (4 blobs, 2 records")


def test_check_finds_planted_damage_and_repair_leaves_a_usable_store(tmp_path: Path) -> None:
    store, ids = populated(tmp_path)
    blob = store.layout.blob_path(ids["stray"])
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")  # one byte changed
    layer_dir = store.snapshots_dir / "layers" / _digest.hex_of(ids["tagged_diff"])
    shutil.rmtree(layer_dir)
    partial = store.layout.path / ".tmp-planted"
    partial.write_bytes(b"half a blob" * 1000)

    out = _check(store.root)
    assert out.returncode == 1, out.stdout + out.stderr
    problems = _problems(out)
    assert f"corrupt blob: {ids['stray']}: its content has digest " in problems[0]
    assert problems[1].startswith("broken record: k-stray [1/1] RUN b: its layer blob ")
    assert problems[2] == (f"missing directory: {layer_dir}: the extracted layer "
                           f"{ids['tagged_diff']} is recorded but its directory is gone")
    assert problems[3] == (f"leftover: {partial}: a temporary file of a process that is gone")
    assert len(problems) == 4
    assert out.stdout.splitlines()[-1].startswith("4 problems (4 blobs")

    repaired = _check(store.root, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert [line.rsplit(" (", 1)[1] for line in _problems(repaired)] == [
        "removed)", "record dropped: the step runs again)",
        "row dropped: made again when needed)", "removed)"]
    again = _check(store.root)
    assert again.returncode == 0 and _problems(again) == [], again.stdout
    assert not blob.exists() and not partial.exists()
    assert store.get_record("k-stray") is None and store.get_record("k-tagged") is not None
    assert load_image(store.layout, BUSYBOX).manifest.layers  # the good image is intact


def test_an_image_missing_a_layer_loses_its_name_but_keeps_its_other_blobs(
        tmp_path: Path) -> None:
    store, ids = populated(tmp_path)
    store.layout.blob_path(ids["tagged"]).unlink()
    out = _check(store.root)
    assert out.returncode == 1
    assert (f"incomplete image: {BUSYBOX}: manifest {ids['manifest']}: its layer "
            f"{ids['tagged']} is missing") in _problems(out)
    assert _check(store.root, "--repair").returncode == 0
    assert BUSYBOX not in Store.open(store.root).images()
    assert store.layout.has_blob(ids["manifest"])  # prune's to remove, not check's
    assert _check(store.root).returncode == 0


def test_a_layer_directory_no_row_tracks_is_recorded_not_removed(tmp_path: Path) -> None:
    store, ids = populated(tmp_path)
    store.db.delete_snapshot(ids["stray_diff"])
    layer_dir = store.snapshots_dir / "layers" / _digest.hex_of(ids["stray_diff"])
    out = _check(store.root)
    assert _problems(out) == [f"untracked directory: {layer_dir}: no row records it, so "
                              "cache du and prune cannot see it"]
    assert _check(store.root, "--repair").returncode == 0
    assert layer_dir.is_dir()
    rows = {s.diff_id: s.size for s in store.db.snapshots()}
    assert rows[ids["stray_diff"]] > 0


def test_a_damaged_database_is_rebuilt_from_the_rows_still_readable(tmp_path: Path) -> None:
    store, ids = populated(tmp_path)
    for n in range(400):  # enough rows for several pages
        store.put_record(CacheRecord(f"k-{n:04}", None, None, "2024-01-01T00:00:00Z",
                                     f"[1/1] RUN step {n} " + "x" * 200, {}))
    store.close()
    db = store.root / "records.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    page = 4096
    data[page * 10:page * 10 + 200] = b"\xff" * 200  # a page in the middle of the records
    db.write_bytes(bytes(data))

    out = _check(store.root)
    assert out.returncode == 1, out.stdout + out.stderr
    assert _problems(out)[0].startswith(f"damaged database: {db}: ")
    repaired = _check(store.root, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "rebuilt with the " in repaired.stdout
    again = _check(store.root)
    assert again.returncode == 0, again.stdout
    kept = Store.open(store.root)
    assert kept.get_record("k-tagged") is not None and len(kept.db.records()) > 100


def test_a_database_sqlite_cannot_open_is_an_error_then_rebuilt(tmp_path: Path) -> None:
    store, _ = populated(tmp_path)
    store.close()
    (store.root / "records.db").write_bytes(os.urandom(8192))
    images = subprocess.run([str(OCIBUILD), "--root", str(store.root), "images"],
                            capture_output=True, text=True, timeout=60)
    assert images.returncode == 1 and "Traceback" not in images.stderr
    assert "the cache database is damaged" in images.stderr
    assert "ocibuild cache check --repair" in images.stderr
    out = _check(store.root)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert _problems(out) == [f"damaged database: {store.root / 'records.db'}: "
                              "file is not a database"]
    assert _check(store.root, "--repair").returncode == 0
    assert _check(store.root).returncode == 0  # records gone: the cache refills as it builds


def test_check_waits_for_no_build_but_refuses_while_one_runs(tmp_path: Path) -> None:
    store, _ = populated(tmp_path)
    with store.lock():
        out = _check(store.root)
    assert out.returncode == 1
    assert "a build is using the store" in out.stderr and "Traceback" not in out.stderr
