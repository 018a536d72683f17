"""Remove the mount points a step's set-up created in its root, without following links
and without leaving the root: a path with an empty, '.' or '..' component is skipped,
and each component is opened with O_NOFOLLOW beneath the root's descriptor."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path


def _open_parent(base: Path, rel: str) -> tuple[int, str] | None:
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = next_fd
    except OSError:
        os.close(fd)
        return None
    return fd, parts[-1]


def remove_created(base: Path, created: Iterable[str]) -> None:
    """Remove each root-relative path in `created` (deepest last made, first removed):
    empty directories and regular files only; anything else is left alone."""
    for rel in reversed(list(created)):
        opened = _open_parent(base, rel)
        if opened is None:
            continue
        fd, name = opened
        try:
            mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                os.rmdir(name, dir_fd=fd)
            elif stat.S_ISREG(mode):
                os.unlink(name, dir_fd=fd)
        except OSError:
            pass  # not empty or already gone: the step put something there, keep it
        finally:
            os.close(fd)
