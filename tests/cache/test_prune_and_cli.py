from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from ocibuild.cache.prune import prune, usage
from ocibuild.oci.image import load_image
from tests.cache.populated import populated as _populated
from tests.support.paths import OCIBUILD


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(OCIBUILD), "--root", str(root), *args], capture_output=True,
                          text=True, timeout=120)


def test_images_lists_short_names(tmp_path: Path) -> None:
    store, _ = _populated(tmp_path)
    out = _cli(store.root, "images")
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()
    assert header.split()[:2] == ["REPOSITORY", "TAG"]
    config = load_image(store.layout, "docker.io/library/busybox:latest").manifest.config
    assert row.split()[:3] == ["busybox", "latest", config.digest.split(":")[1][:12]]


def test_du_shows_every_kind_of_item(tmp_path: Path) -> None:
    store, _ = _populated(tmp_path)
    kinds = {(i.kind, i.in_use) for i in usage(store)}
    assert kinds == {("record", True), ("record", False), ("snapshot", True),
                     ("snapshot", False), ("cache-mount", False), ("trash", False),
                     ("temporary", False)}  # this process's own: it prepared a step
    out = _cli(store.root, "cache", "du")
    assert out.returncode == 0, out.stderr
    assert "cache-mount" in out.stdout and "Reclaimable:" in out.stdout


def test_prune_keeps_what_tagged_images_use(tmp_path: Path) -> None:
    store, d = _populated(tmp_path)
    out = _cli(store.root, "cache", "prune")
    assert out.returncode == 0, out.stderr
    assert store.get_record("k-tagged") is not None
    assert store.get_record("k-stray") is None
    assert not store.layout.has_blob(d["stray"])
    assert load_image(store.layout, "docker.io/library/busybox:latest").digest == d["manifest"]
    layers = store.snapshots_dir / "layers"
    assert {p.name for p in layers.iterdir()} == {d["tagged_diff"].split(":")[1]}
    assert list(store.mounts_dir.glob("*-0")) == []

    out = _cli(store.root, "cache", "prune", "--all")
    assert out.returncode == 0, out.stderr
    assert store.get_record("k-tagged") is None
    assert list(layers.iterdir()) == []
    image = load_image(store.layout, "docker.io/library/busybox:latest")  # still whole
    assert image.digest == d["manifest"] and store.layout.has_blob(d["tagged"])


def test_prune_filters_until_and_keep_storage(tmp_path: Path) -> None:
    store, d = _populated(tmp_path)
    report = prune(store, until=3600)  # everything was used just now
    # but the trash (the released step directory) is garbage whatever its age
    assert [i.kind for i in report.removed] == ["trash"] and report.reclaimed > 0
    assert store.layout.has_blob(d["stray"])
    report = prune(store, keep_storage=10**9)  # already below the limit
    assert report.removed == []
    time.sleep(1.1)
    store.get_record("k-stray")  # touched: now the most recently used
    report = prune(store, all=True, until=1)
    assert store.get_record("k-stray") is not None  # used less than a second ago
    assert store.get_record("k-tagged") is None
    report = prune(store, all=True, keep_storage=0)
    assert store.db.records() == [] and store.db.snapshots() == [] and store.db.mounts() == []


def test_prune_refuses_while_a_build_holds_the_store(tmp_path: Path) -> None:
    store, d = _populated(tmp_path)
    with store.lock():
        out = _cli(store.root, "cache", "prune", "--all")
    assert out.returncode == 1
    assert "a build is using the store" in out.stderr and "Traceback" not in out.stderr
    assert store.get_record("k-stray") is not None


def test_prune_removes_leftovers_of_interrupted_builds(tmp_path: Path) -> None:
    store, _ = _populated(tmp_path)
    (store.layout.path / ".tmp-half-written").write_bytes(b"partial")
    step = store.snapshots_dir / "steps" / "crashed"
    (step / "upper").mkdir(parents=True)
    os.chmod(step / "upper", 0)
    prune(store)
    assert not (store.layout.path / ".tmp-half-written").exists()
    assert not step.exists()


def test_bad_prune_arguments_are_usage_errors(tmp_path: Path) -> None:
    for args in (["--filter", "label=x"], ["--keep-storage", "lots"],
                 ["--filter", "until=soon"]):
        out = _cli(tmp_path, "cache", "prune", *args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr


def test_sizes_and_durations_as_people_type_them() -> None:
    from ocibuild.cache.units import parse_duration, parse_size

    assert parse_size("512MB") == 512 * 1024**2
    assert parse_size("2g") == 2 * 1024**3
    assert parse_size("1000") == 1000
    assert parse_duration("1h30m") == 5400
    assert parse_duration("7d") == 7 * 86400
