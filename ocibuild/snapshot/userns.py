"""Acting on files as the sandbox's id mapping sees them.

As root the mapping is the identity, so functions run right here. An unprivileged user
cannot chown to its subordinate ids, read files they own with private modes, nor remove
them from the host side; it runs the same functions inside a user namespace with the
sandbox's mapping (`run_in_userns`), where it is root over every mapped id.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from typing import Any


def call(function: str, args: dict[str, Any]) -> Any:
    """Run "module:function"(args) under the sandbox mapping; returns its JSON result."""
    if os.geteuid() == 0:
        module, name = function.split(":")
        return getattr(importlib.import_module(module), name)(args)
    from ocibuild.sandbox import run_in_userns

    return run_in_userns(function, args)


def can_chown() -> bool:
    """False when the sandbox maps a single id: every file then belongs to the user."""
    if os.geteuid() == 0:
        return True
    from ocibuild.sandbox.idmapping import plan_mapping

    return not plan_mapping().single


def chown_as_mapped(path: Path, uid: int, gid: int) -> None:
    """chown `path` to ids `uid`/`gid` as seen inside the sandbox."""
    call("ocibuild.snapshot.userns:_chown", {"path": str(path), "uid": uid, "gid": gid})


def _chown(args: dict[str, Any]) -> None:
    os.chown(args["path"], args["uid"], args["gid"])


def remove_tree(path: Path) -> None:
    """Remove a tree written under the sandbox mapping (subordinate ids, mode 000 dirs)."""
    if not os.path.lexists(path):
        return
    call("ocibuild.snapshot.userns:_remove_tree", {"path": str(path)})


def _remove_tree(args: dict[str, Any]) -> None:
    remove_local(Path(args["path"]))


def remove_local(path: Path) -> None:
    """Remove `path` with this process's rights (root here, or root in the namespace,
    passes permission checks over mapped ids: mode-000 directories need no chmod)."""
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        os.unlink(path)
