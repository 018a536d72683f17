from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from ocibuild.cache import CacheRecord, Store, StoreBusyError, default_root
from ocibuild.errors import OcibuildError, UsageError
from ocibuild.oci import mediatypes
from ocibuild.oci.config import ImageConfig
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.image import write_image


def _image(store: Store, payload: bytes = b"layer") -> Descriptor:
    digest = store.layout.put_bytes(payload)
    layer = Descriptor(mediatypes.OCI_LAYER, digest, len(payload))
    config = ImageConfig("amd64", "linux", diff_ids=(digest,), created="2024-01-01T00:00:00Z")
    return write_image(store.layout, config, [layer])


def test_default_root_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OCIBUILD_ROOT", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "ocibuild"
    monkeypatch.setenv("OCIBUILD_ROOT", str(tmp_path / "explicit"))
    assert default_root() == tmp_path / "explicit"
    store = Store.open()
    assert store.root == tmp_path / "explicit"
    assert (store.root / "content" / "oci-layout").is_file()


def test_records_round_trip_and_survive_reopen(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    assert store.get_record("ab" * 32) is None
    blob = store.layout.put_bytes(b"a layer")
    layer = Descriptor(mediatypes.OCI_LAYER_GZIP, blob, 7)
    record = CacheRecord("ab" * 32, layer, "sha256:" + "1" * 64, "2024-01-01T00:00:00Z",
                         "[1/2] RUN echo", {"op": "exec"})
    store.put_record(record)
    store.put_record(CacheRecord("cd" * 32, None, None, "2024-01-01T00:00:00Z", "ENV", {}))
    store.close()
    again = Store.open(tmp_path)
    assert again.get_record("ab" * 32) == record
    assert again.get_record("cd" * 32) is not None
    assert again.get_record("cd" * 32).layer is None


def test_record_for_a_missing_blob_is_refused_and_not_trusted(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    ghost = Descriptor(mediatypes.OCI_LAYER_GZIP, "sha256:" + "9" * 64, 3)
    with pytest.raises(OcibuildError, match="not in the store"):
        store.put_record(CacheRecord("k1", ghost, None, "", "x", {}))
    blob = store.layout.put_bytes(b"abc")
    store.put_record(CacheRecord("k2", Descriptor(mediatypes.OCI_LAYER, blob, 3), None, "",
                                 "x", {}))
    store.layout.blob_path(blob).unlink()  # e.g. removed by hand
    assert store.get_record("k2") is None


def _put_many(root: str, worker: int) -> None:
    store = Store.open(root)
    for i in range(40):
        store.put_record(CacheRecord(f"{worker}-{i}", None, None, "", f"w{worker}", {"i": i}))


def test_concurrent_processes_write_records_safely(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    # Separate processes, as concurrent builds are (a fork would inherit this process's
    # SQLite lock bookkeeping, which SQLite does not support).
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_put_many, args=(str(tmp_path), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(Store.open(tmp_path).db.records()) == 160


def test_tags_are_normalized_like_docker(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    desc = _image(store)
    assert store.tag("busybox", desc) == "docker.io/library/busybox:latest"
    store.tag("localhost:5000/team/app:1.0", desc)
    assert set(store.images()) == {"docker.io/library/busybox:latest",
                                   "localhost:5000/team/app:1.0"}
    for name in ("busybox", "busybox:latest", "library/busybox",
                 "docker.io/library/busybox:latest"):
        image = store.resolve_image(name)
        assert image is not None and image.digest == desc.digest
    config_hex = store.resolve_image("busybox").manifest.config.digest.split(":")[1]
    assert store.resolve_image(config_hex[:12]).digest == desc.digest
    assert store.resolve_image("busybox:other") is None
    with pytest.raises(UsageError, match="invalid image name"):
        store.tag("Busy Box", desc)


def test_retag_moves_the_name(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    first, second = _image(store, b"one"), _image(store, b"two")
    store.tag("app", first)
    store.tag("app:latest", second)
    assert store.resolve_image("app").digest == second.digest
    assert len(store.images()) == 1


def test_shared_cache_mount_is_one_directory(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    with store.cache_mount("/root/.cache", "shared") as a, \
            store.cache_mount("/root/.cache", "shared") as b:
        assert a == b and a.is_dir()
        (a / "f").write_text("kept")
    with store.cache_mount("/root/.cache", "shared") as c:
        assert (c / "f").read_text() == "kept"
    with store.cache_mount("other", "shared") as d:
        assert d != c and not (d / "f").exists()


def test_private_cache_mount_gets_a_new_directory_when_busy(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    with store.cache_mount("id", "private") as a:
        with store.cache_mount("id", "private") as b:
            assert a != b
    with store.cache_mount("id", "private") as c:
        assert c == a  # free again: the first directory is reused


def test_locked_cache_mount_waits_for_exclusive_use(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    events: list[str] = []

    def second() -> None:
        with store.cache_mount("id", "locked"):
            events.append("second in")

    with store.cache_mount("id", "locked") as path:
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        events.append("first out")
        assert path.is_dir()
    t.join(10)
    assert events == ["first out", "second in"]


def test_cache_mount_is_created_with_requested_mode(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    with store.cache_mount("m", "shared", mode=0o750) as path:
        assert path.stat().st_mode & 0o7777 == 0o750
    with pytest.raises(OcibuildError, match="unknown sharing"):
        with store.cache_mount("m", "sometimes"):
            pass


def test_prune_lock_is_refused_while_a_build_holds_the_store(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    with store.lock(), store.lock():  # builds share it
        with pytest.raises(StoreBusyError, match="a build is using the store"):
            with store.exclusive():
                pass
    with store.exclusive():
        pass


def test_store_root_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(OcibuildError):
        Store.open(tmp_path / "f")
    assert os.path.isfile(tmp_path / "f")


def test_cache_mount_owner_is_mapped_for_an_unprivileged_user(sub_user, sub_tmp: Path) -> None:
    from tests.support.paths import REPO, VENV_BIN

    code = ("import sys; from ocibuild.cache import Store\n"
            "s = Store.open(sys.argv[1])\n"
            "with s.cache_mount('pip', 'locked', mode=0o700, uid=1000, gid=1000) as p:\n"
            "    print(p)\n")
    proc = sub_user.run([VENV_BIN / "python", "-c", code, sub_tmp / "store"], cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    st = os.stat(proc.stdout.strip())
    # uid 1000 inside the step is subordinate id 200000 + 1000 - 1 on the host
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (200999, 200999, 0o700)
