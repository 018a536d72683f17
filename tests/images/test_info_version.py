"""`ocibuild version` and `ocibuild info`, and the image commands as an unprivileged
user (the rootless mode): what each user sees about this host."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ocibuild import __version__
from ocibuild.oci.platform import host
from ocibuild.sandbox.idmapping import subordinate_ranges
from tests.support.paths import OCIBUILD
from tests.support.users import User


def _info(user: User, root: Path) -> dict:
    proc = user.run([OCIBUILD, "--root", root, "info", "--format", "json"])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_version_names_ocibuild_and_python(sub_user: User) -> None:
    proc = sub_user.run([OCIBUILD, "version"])
    assert proc.returncode == 0, proc.stderr
    assert f"ocibuild:  {__version__}" in proc.stdout and "python:" in proc.stdout
    doc = json.loads(sub_user.run([OCIBUILD, "version", "--format", "json"]).stdout)
    assert doc["ocibuild"] == __version__ and doc["platform"].startswith("linux/")


def test_info_for_a_user_with_subordinate_ids(sub_user: User, sub_tmp: Path) -> None:
    root = sub_tmp / "store"
    info = _info(sub_user, root)
    assert info["store"]["path"] == str(root) and info["store"]["images"] == 0
    assert info["isolation"]["userns"] == {"available": True}
    assert info["isolation"]["auto"]["uses"] == "userns"
    assert not info["isolation"]["chroot"]["available"]
    assert "needs root" in info["isolation"]["chroot"]["why"]
    expected = [f"{s}:{c}" for s, c in subordinate_ranges(Path("/etc/subuid"), sub_user.name,
                                                            sub_user.uid)]
    assert info["idmap"]["subuid"] == expected != []
    assert info["snapshotter"]["uses"] in ("overlay", "native") and info["snapshotter"]["why"]
    assert info["network"]["helper"] == (shutil.which("slirp4netns") or "")
    assert info["versions"]["ocibuild"] == __version__
    # this machine's own platform natively; arm64 through the handler the test set-up
    # registers (scripts/test-binfmt.sh), when it could
    runs = {p["platform"]: p["runs"] for p in info["platforms"]}
    here = str(host().normalized())
    assert runs[here] == "native"
    if here == "linux/amd64" and Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").is_file():
        assert runs["linux/arm64"] == "qemu-aarch64"
    text = sub_user.run([OCIBUILD, "--root", root, "info"]).stdout
    assert f"store:        {root}" in text and "auto uses userns" in text
    assert f"platforms:    {here}" in text
    assert f"subuid:       {sub_user.name}: {expected[0]}" in text


def test_info_for_a_user_without_subordinate_ids(nosub_user: User, nosub_tmp: Path) -> None:
    info = _info(nosub_user, nosub_tmp / "store")
    assert info["idmap"]["subuid"] == [] and info["idmap"]["subgid"] == []
    text = nosub_user.run([OCIBUILD, "--root", nosub_tmp / "store", "info"]).stdout
    assert f"subuid:       {nosub_user.name}: none" in text


def test_tag_rmi_prune_as_an_unprivileged_user(sub_user: User, sub_tmp: Path) -> None:
    root = sub_tmp / "store"
    tree = sub_tmp / "tree"
    tree.mkdir()
    (tree / "hello.txt").write_text("hello\n")
    shutil.chown(tree, sub_user.uid, sub_user.gid)
    shutil.chown(tree / "hello.txt", sub_user.uid, sub_user.gid)

    def run(*args: str | Path) -> str:
        proc = sub_user.run([OCIBUILD, "--root", root, *args])
        assert proc.returncode == 0, f"{args}: {proc.stderr}"
        return proc.stdout

    run("import", tree, "--tag", "mine:1")
    run("tag", "mine:1", "mine:2")
    assert run("images", "--format", "{{.Repository}}:{{.Tag}}").split() == ["mine:1", "mine:2"]
    run("rmi", "mine:1")
    run("rmi", "--prune", "mine:2")
    assert run("images", "-q") == ""
    assert not any((root / "content" / "blobs" / "sha256").iterdir())
