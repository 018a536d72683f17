"""ocibuild.atomic's temporary files and directories, and its tree removal: what
tempfile and shutil did for the builder, without importing them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ocibuild.atomic import new_dir, new_file, remove_tree


def test_new_names_are_private_and_never_reused(tmp_path: Path) -> None:
    dirs = {new_dir(tmp_path, "d-") for _ in range(50)}
    files = set()
    for _ in range(50):
        fd, path = new_file(tmp_path, ".tmp-")
        os.close(fd)
        files.add(path)
    assert len(dirs) == 50 and len(files) == 50
    # as long as tempfile's names: a socket's directory is sized for them
    assert all(p.name.startswith("d-") and len(p.name) == 10 and p.is_dir() for p in dirs)
    assert {stat.S_IMODE(p.stat().st_mode) for p in dirs} == {0o700}
    assert {stat.S_IMODE(os.stat(p).st_mode) for p in files} == {0o600}


def test_remove_tree_removes_flat_and_deep_trees(tmp_path: Path) -> None:
    flat = new_dir(tmp_path)
    (flat / "socket-dir").mkdir()
    (flat / "file").write_text("x")
    os.symlink("/", flat / "link")
    deep = new_dir(tmp_path)
    (deep / "a" / "b").mkdir(parents=True)
    (deep / "a" / "b" / "file").write_text("x")
    remove_tree(flat)
    remove_tree(deep)
    remove_tree(tmp_path / "never-there")
    assert list(tmp_path.iterdir()) == []


def test_remove_tree_never_empties_a_directory_a_link_points_to(tmp_path: Path) -> None:
    target = tmp_path / "target"
    (target / "sub").mkdir(parents=True)
    (target / "keep").write_text("k")
    link = tmp_path / "link"
    link.symlink_to(target)
    remove_tree(link)
    assert (target / "keep").exists() and (target / "sub").is_dir()
    assert link.is_symlink()
