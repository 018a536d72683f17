"""The store is its owner's alone: cache mounts and layers can hold secrets."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.support.paths import OCIBUILD
from tests.support.users import User


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_existing_open_root_becomes_private_on_first_use(
        sub_user: User, sub_tmp: Path, nosub_user: User) -> None:
    root = sub_tmp / "store"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    os.chown(root, sub_user.uid, sub_user.gid)
    used = sub_user.run([OCIBUILD, "--root", root, "images"])
    assert used.returncode == 0, used.stderr
    assert _mode(root) == 0o700
    assert (root / "content").is_dir()
    other = nosub_user.run(["ls", root])
    assert other.returncode != 0 and "Permission denied" in other.stderr


def test_a_new_root_is_private(sub_user: User, sub_tmp: Path) -> None:
    root = sub_tmp / "a" / "store"
    used = sub_user.run([OCIBUILD, "--root", root, "images"])
    assert used.returncode == 0, used.stderr
    assert _mode(root) == 0o700
