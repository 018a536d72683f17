"""The change set of an overlayfs upper directory.

In an upper directory a deleted path is a 0/0 character device and a directory that
replaced a lower one carries `user.overlay.opaque=y` (`trusted.overlay.opaque=y` when
mounted without userxattr); everything else there was added or modified.
"""

from __future__ import annotations

import os
import stat

from ocibuild.oci.layerwrite import ADD, DELETE, OPAQUE, Change, plan_from_tree

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


def _is_opaque(full: bytes) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(full, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False
