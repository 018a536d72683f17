"""The change set of an overlayfs upper directory.

In an upper directory a deleted path is a 0/0 character device and a directory that
replaced a lower one carries `user.overlay.opaque=y` (`trusted.overlay.opaque=y` when
mounted without userxattr); everything else there was added or modified.

`layer_entries` gives the same layer as `changes_from_upper` through
`plan_from_changes`, without holding every path of the upper directory: a layer is
sorted by whole path, where "a.txt" comes between "a" and "a/b", so no walk of
directories gives that order. A heap does: a directory's entries join it when the
directory itself comes out, and all of them sort after it. It holds the entries of
the directories on the way (those waiting), not the tree.
"""

from __future__ import annotations

import heapq
import os
import stat
from collections.abc import Iterator

from ocibuild.errors import OcibuildError
from ocibuild.oci.layerwrite import (
    ADD,
    DELETE,
    OPAQUE,
    OPAQUE_MARKER,
    TAR_BLOCK,
    WHITEOUT,
    WHITEOUT_PREFIX,
    Change,
    plan_from_tree,
)

_OPAQUE_XATTRS = ("user.overlay.opaque", "trusted.overlay.opaque")


def changes_from_upper(upper: bytes) -> list[Change]:
    changes = []
    for rel in sorted(plan_from_tree(upper)):
        full = upper + b"/" + rel
        st = os.lstat(full)
        path = os.fsdecode(rel)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            changes.append(Change(path, DELETE))
        elif stat.S_ISDIR(st.st_mode) and _is_opaque(full):
            changes.append(Change(path, OPAQUE))
        else:
            changes.append(Change(path, ADD))
    return changes


def layer_entries(upper: bytes) -> Iterator[tuple[bytes, str]]:
    """(path in the layer, ADD or WHITEOUT) of an upper directory's layer, in layer
    order. Where two entries have one path (a real `.wh.NAME` beside a deleted NAME),
    the one from the later path in the upper wins, as in a plan built change by change."""
    # (path in the layer, in the upper, action, a directory to open when it comes out)
    waiting: list[tuple[bytes, bytes, str, bool]] = []
    _add_children(upper, b"", waiting)
    while waiting:
        layer_path, rel, action, is_dir = heapq.heappop(waiting)
        if is_dir:
            _open(upper, rel, waiting)
        while waiting and waiting[0][0] == layer_path:  # the later one wins
            _, rel, action, is_dir = heapq.heappop(waiting)
            if is_dir:
                _open(upper, rel, waiting)
        yield layer_path, action


def _open(upper: bytes, rel: bytes, waiting: list[tuple[bytes, bytes, str, bool]]) -> None:
    """A directory's entries (and its opaque marker) join the heap."""
    if _is_opaque(upper + b"/" + rel):
        heapq.heappush(waiting, (rel + b"/" + OPAQUE_MARKER, rel, WHITEOUT, False))
    _add_children(upper, rel, waiting)


def _add_children(upper: bytes, rel: bytes,
                  waiting: list[tuple[bytes, bytes, str, bool]]) -> None:
    for name, is_dir, deleted in _kinds(upper + b"/" + rel if rel else upper):
        child = rel + b"/" + name if rel else name
        if deleted:  # a whiteout
            marker = (rel + b"/" if rel else b"") + WHITEOUT_PREFIX + name
            heapq.heappush(waiting, (marker, child, WHITEOUT, False))
        else:
            heapq.heappush(waiting, (child, child, ADD, is_dir))


def _kinds(directory: bytes) -> list[tuple[bytes, bool, bool]]:
    """(name, is a directory, is a deletion) of each entry: the directory's own entry
    types say it for all but special files, which alone are looked up (a deletion is a
    0/0 character device). The layer's writer reads each entry's lstat anyway."""
    found = []
    try:
        with os.scandir(directory) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    found.append((e.name, True, False))
                elif e.is_file(follow_symlinks=False) or e.is_symlink():
                    found.append((e.name, False, False))
                else:
                    st = e.stat(follow_symlinks=False)
                    found.append((e.name, False, stat.S_ISCHR(st.st_mode) and st.st_rdev == 0))
    except OSError as exc:
        raise _unreadable(exc, directory) from exc
    return found


def _children(directory: bytes) -> list[tuple[bytes, os.stat_result]]:
    try:
        with os.scandir(directory) as it:
            return [(e.name, e.stat(follow_symlinks=False)) for e in it]
    except OSError as exc:
        raise _unreadable(exc, directory) from exc


def upper_layer_size(upper: bytes) -> int:
    """About how many tar bytes the layer of an upper directory makes (headers and file
    data, in any order: for progress)."""
    total, stack = 2 * TAR_BLOCK, [upper]
    while stack:
        directory = stack.pop()
        for name, st in _children(directory):
            total += TAR_BLOCK
            if stat.S_ISREG(st.st_mode):
                total += (st.st_size + TAR_BLOCK - 1) // TAR_BLOCK * TAR_BLOCK
            elif stat.S_ISDIR(st.st_mode):
                full = directory + b"/" + name
                total += TAR_BLOCK if _is_opaque(full) else 0
                stack.append(full)
    return total


def _unreadable(exc: OSError, where: bytes) -> OcibuildError:
    path = os.fsdecode(exc.filename) if exc.filename else os.fsdecode(where)
    return OcibuildError(f"cannot read {path} for the layer: {exc.strerror}")


def _is_opaque(full: bytes) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(full, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False
