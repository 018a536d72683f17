"""`ocibuild import` of the busybox base: schemas, skopeo, umoci, reproducibility."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import OCIBUILD, REPO
from tests.support.schemas import validate
from tests.support.users import User


def _import(user: User | None, src: Path, out: Path, *extra: str,
            env: dict[str, str] | None = None) -> str:
    cmd = [str(OCIBUILD), "import", str(src), "--tag", "busybox:latest", "--output",
           f"oci:{out}", *extra]
    if user is None:
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    else:
        res = user.run(cmd, env=env)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()[-1]


@pytest.fixture
def user_rootfs(sub_user: User, sub_tmp: Path) -> Path:
    """The busybox base made by the unprivileged user itself (so it can read all of it)."""
    dest = sub_tmp / "rootfs"
    res = sub_user.run(["bash", str(REPO / "rootfs/busybox/make.sh"), str(dest)])
    assert res.returncode == 0, res.stderr
    return dest


def _all_json_we_wrote(layout: Path) -> list[tuple[str, dict]]:
    docs: list[tuple[str, dict]] = [
        ("layout", json.loads((layout / "oci-layout").read_text())),
        ("index", json.loads((layout / "index.json").read_text())),
    ]
    for entry in docs[1][1]["manifests"]:
        manifest = json.loads((layout / "blobs/sha256" / entry["digest"][7:]).read_text())
        docs.append(("manifest", manifest))
        config = json.loads(
            (layout / "blobs/sha256" / manifest["config"]["digest"][7:]).read_text())
        docs.append(("config", config))
    return docs


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_import_validates_against_oci_schemas(user_rootfs: Path, sub_user: User,
                                              sub_tmp: Path, compression: str) -> None:
    out = sub_tmp / "layout"
    _import(sub_user, user_rootfs, out, "--compression", compression)
    docs = _all_json_we_wrote(out)
    assert [k for k, _ in docs] == ["layout", "index", "manifest", "config"]
    for kind, doc in docs:
        validate(kind, doc)
    manifest = docs[2][1]
    assert manifest["layers"][0]["mediaType"].endswith(
        "+gzip" if compression == "gzip" else "+zstd")
    config = docs[3][1]
    assert config["os"] == "linux" and config["rootfs"]["type"] == "layers"
    assert len(config["rootfs"]["diff_ids"]) == 1 and len(config["history"]) == 1


def test_skopeo_and_umoci_read_the_import(user_rootfs: Path, sub_user: User,
                                          sub_tmp: Path) -> None:
    out = sub_tmp / "layout"
    digest = _import(sub_user, user_rootfs, out)
    res = sub_user.run(["skopeo", "inspect", f"oci:{out}:latest"])
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["Digest"] == digest
    assert info["Os"] == "linux" and len(info["Layers"]) == 1

    bundle = sub_tmp / "bundle"
    res = sub_user.run(["umoci", "unpack", "--rootless", "--image", f"{out}:latest", str(bundle)])
    assert res.returncode == 0, res.stderr
    rootfs = bundle / "rootfs"
    assert (rootfs / "bin/sh").is_symlink()
    assert oct((rootfs / "tmp").stat().st_mode & 0o7777) == "0o1777"
    # The unpacked tree is a working root: chroot into it inside a user namespace.
    res = sub_user.run(["unshare", "--user", "--map-root-user", "chroot", str(rootfs),
                        "/bin/busybox", "echo", "ok"])
    assert res.returncode == 0, res.stderr
    assert res.stdout == "ok\n"


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_import_is_reproducible(user_rootfs: Path, sub_user: User, sub_tmp: Path,
                                compression: str) -> None:
    tree_a, tree_b = sub_tmp / "a", sub_tmp / "b"
    res = sub_user.run(["cp", "-a", str(user_rootfs), str(tree_a)])
    assert res.returncode == 0, res.stderr
    res = sub_user.run(["cp", "-a", str(user_rootfs), str(tree_b)])
    assert res.returncode == 0, res.stderr
    # Different mtimes on disk, both later than SOURCE_DATE_EPOCH (which clamps them).
    sub_user.run(["find", str(tree_a), "-exec", "touch", "-h", "-d", "2024-06-01", "{}", "+"],
                 check=True)
    sub_user.run(["find", str(tree_b), "-exec", "touch", "-h", "{}", "+"], check=True)
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    d1 = _import(sub_user, tree_a, sub_tmp / "out-a", "--compression", compression, env=env)
    d2 = _import(sub_user, tree_b, sub_tmp / "out-b", "--compression", compression, env=env)
    assert d1 == d2
    blobs_a = sorted(os.listdir(sub_tmp / "out-a/blobs/sha256"))
    blobs_b = sorted(os.listdir(sub_tmp / "out-b/blobs/sha256"))
    assert blobs_a == blobs_b


def test_import_of_a_tarball(busybox_rootfs: Path, tmp_path: Path) -> None:
    tarball = tmp_path / "rootfs.tar.gz"
    subprocess.run(["tar", "-C", str(busybox_rootfs), "-czf", str(tarball), "."], check=True)
    out = tmp_path / "layout"
    _import(None, tarball, out)
    res = subprocess.run(["skopeo", "inspect", f"oci:{out}:latest"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    bundle = tmp_path / "bundle"
    res = subprocess.run(["umoci", "unpack", "--image", f"{out}:latest", str(bundle)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert os.readlink(bundle / "rootfs/bin/sh") == "/bin/busybox"


def test_inspect_text_and_json(busybox_rootfs: Path, tmp_path: Path) -> None:
    out = tmp_path / "layout"
    digest = _import(None, busybox_rootfs, out)
    res = subprocess.run([str(OCIBUILD), "inspect", f"oci:{out}:latest"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert digest in res.stdout and "Layers:     1" in res.stdout
    res = subprocess.run([str(OCIBUILD), "inspect", "--format", "json", f"oci:{out}:latest"],
                         capture_output=True, text=True)
    doc = json.loads(res.stdout)
    assert doc["digest"] == digest
    validate("manifest", doc["manifest"])
    validate("config", doc["config"])


def test_inspect_errors_are_clear(tmp_path: Path, busybox_rootfs: Path) -> None:
    res = subprocess.run([str(OCIBUILD), "inspect", f"oci:{tmp_path}/nothing:latest"],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert "not an OCI image layout" in res.stderr and "Traceback" not in res.stderr
    out = tmp_path / "layout"
    _import(None, busybox_rootfs, out)
    res = subprocess.run([str(OCIBUILD), "inspect", f"oci:{out}:nope"], capture_output=True,
                         text=True)
    assert res.returncode == 1
    assert "no image tagged 'nope'" in res.stderr and "latest" in res.stderr
    assert "Traceback" not in res.stderr


def test_import_tarball_missing(tmp_path: Path) -> None:
    shutil.rmtree(tmp_path, ignore_errors=True)
    res = subprocess.run([str(OCIBUILD), "import", str(tmp_path / "none.tar"), "--tag", "x",
                          "--output", f"oci:{tmp_path}/o"], capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
