"""Resolve a path inside a root directory as the step would see it, never leaving it.

Symlinks are followed with the root as "/" and ".." stops at the root, so a symlink in
an image cannot point a mount point at a host path. Used before any step process runs,
so nothing races with the walk.
"""

from __future__ import annotations

import os

_MAX_SYMLINKS = 40


def resolve_in_root(root: str, path: str, create: str | None = None,
                    created: list[str] | None = None) -> str:
    """The host path of `path` inside `root`. With `create` "dir" or "file", missing
    components are made (directories, then the last as that kind) and their
    root-relative paths appended to `created`."""
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    links = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            if resolved:
                resolved.pop()
            continue
        host = os.path.join(root, *resolved, name)
        try:
            is_link = os.path.islink(host)
            exists = is_link or os.path.lexists(host)
        except OSError:
            exists, is_link = False, False
        if is_link:
            links += 1
            if links > _MAX_SYMLINKS:
                raise OSError(40, f"too many levels of symbolic links in {path}")
            target = os.readlink(host)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        if not exists:
            if create is None:
                resolved.append(name)
                continue
            if parts or create == "dir":
                os.mkdir(host, 0o755)
            else:
                os.close(os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            if created is not None:
                created.append("/".join([*resolved, name]))
        resolved.append(name)
    return os.path.join(root, *resolved)
