"""`ocibuild rootfs list` and the busybox recipe through the same interface."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.build.conftest import Builder, write_context
from tests.support.paths import OCIBUILD
from tests.support.users import User


def test_list_shows_each_recipe_and_what_it_needs(sub_user: User) -> None:
    out = sub_user.run([OCIBUILD, "rootfs", "list"], check=True).stdout
    assert "busybox\n" in out and "debian\n" in out
    assert "busybox-static (ready)" in out
    assert "needs: mmdebstrap, uidmap, dpkg (ready)" in out


def test_busybox_recipe_makes_an_image_a_build_runs_on(builder: Builder) -> None:
    made = builder.user.run([OCIBUILD, "--root", builder.root, "rootfs", "busybox"],
                            check=True)
    assert made.stdout.startswith("busybox:latest sha256:")
    inspect = builder.user.run([OCIBUILD, "--root", builder.root, "inspect", "--format",
                                "json", "busybox:latest"], check=True)
    config = json.loads(inspect.stdout)["config"]
    assert config["config"]["Cmd"] == ["sh"]
    assert config["config"]["Labels"] == {"io.ocibuild.rootfs.recipe": "busybox"}
    app = write_context(builder.tmp / "app", {
        "Dockerfile": "FROM busybox\nRUN id -un > /who && cat /who\n"}, builder.user)
    proc, _ = builder.build(app)
    assert "root" in proc.stderr


def test_a_source_that_is_neither_a_mirror_nor_a_directory_is_refused(
        sub_user: User, sub_tmp: Path) -> None:
    proc = sub_user.run([OCIBUILD, "--root", sub_tmp / "store", "rootfs", "debian",
                         "--source", sub_tmp / "missing"])
    assert proc.returncode == 2
    assert "neither a mirror URL nor a directory of .deb files" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_package_directory_others_cannot_read_is_refused_before_mmdebstrap(
        sub_user: User, sub_tmp: Path) -> None:
    private = sub_tmp / "private"
    (private / "debs").mkdir(parents=True)
    (private / "debs" / "x_1_all.deb").write_bytes(b"!<arch>\n")
    for path in [private, *private.rglob("*")]:
        os.chown(path, sub_user.uid, sub_user.gid)
    private.chmod(0o700)
    proc = sub_user.run([OCIBUILD, "--root", sub_tmp / "store", "rootfs", "debian",
                         "--source", private / "debs"])
    assert proc.returncode == 2, proc.stderr
    assert f"{private} must be searchable by others (chmod o+x {private})" in proc.stderr
