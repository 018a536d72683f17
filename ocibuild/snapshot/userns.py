"""Acting on files as the sandbox's id mapping sees them.

As root the mapping is the identity, so plain system calls do. An unprivileged user
cannot chown to its subordinate ids nor remove what they own from the host side; it
does both inside a user namespace with the sandbox's mapping (`run_in_userns`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


def _in_userns(function: str, args: dict[str, Any]) -> Any:
    from ocibuild.sandbox import run_in_userns

    return run_in_userns(function, args)


def chown_as_mapped(path: Path, uid: int, gid: int) -> None:
    """chown `path` to ids `uid`/`gid` as seen inside the sandbox."""
    if os.geteuid() == 0:
        os.chown(path, uid, gid)
        return
    _in_userns("ocibuild.snapshot.userns:_chown", {"path": str(path), "uid": uid, "gid": gid})


def _chown(args: dict[str, Any]) -> None:
    os.chown(args["path"], args["uid"], args["gid"])


def remove_tree(path: Path) -> None:
    """Remove a tree written under the sandbox mapping (subordinate ids, mode 000 dirs)."""
    if not os.path.lexists(path):
        return
    if os.geteuid() == 0:
        _remove(path)
        return
    _in_userns("ocibuild.snapshot.userns:_remove_tree", {"path": str(path)})


def _remove_tree(args: dict[str, Any]) -> None:
    _remove(Path(args["path"]))


def _remove(path: Path) -> None:
    # root (host, or inside the namespace over mapped ids) passes permission checks, so
    # mode-000 directories left by a step need no chmod first.
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        os.unlink(path)
