"""The native snapshotter's change detection: stat signatures before and after a step.

A path changed when its signature (inode, ctime, mtime, size, mode, owner) differs;
it was deleted when it is gone and its parent directory is still the same directory.
A directory that is a different inode (number or generation: removed and made again)
or that replaced a non-directory is opaque, as overlayfs makes it, and all its contents
are additions.
These rules give the change set that an overlay upper directory holds for the same step.
"""

from __future__ import annotations

import array
import fcntl
import os
import stat
from pathlib import Path

from ocibuild.oci.layer import ADD, DELETE, OPAQUE, Change
from ocibuild.oci.layerwrite import walk_tree

Signature = tuple[int, int, int, int, int, int, int, int]

FS_IOC_GETVERSION = 0x80087601  # _IOR('v', 1, long): the inode's generation number


def _generation(path: bytes) -> int:
    """A directory's inode generation: ext4 and others reuse a freed inode number at
    once, so `rm -r d; mkdir d` often keeps st_ino; the generation tells them apart."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        buf = array.array("l", [0])
        fcntl.ioctl(fd, FS_IOC_GETVERSION, buf, True)
        return buf[0]
    except OSError:
        return 0  # not supported by this filesystem
    finally:
        os.close(fd)


def _signature(full: bytes) -> Signature:
    st = os.lstat(full)
    gen = _generation(full) if stat.S_ISDIR(st.st_mode) else 0
    return (st.st_ino, st.st_ctime_ns, st.st_mtime_ns, st.st_size, st.st_mode, st.st_uid,
            st.st_gid, gen)


def signatures(root: Path) -> dict[bytes, Signature]:
    base = os.fsencode(root)
    return {rel: _signature(base + b"/" + rel) for rel in walk_tree(base)}


def save_signatures(root: Path, dest: Path) -> None:
    import pickle  # here: the file-op server preloads this module for the native snapshotter

    with open(dest, "wb") as f:
        pickle.dump(signatures(root), f, protocol=pickle.HIGHEST_PROTOCOL)


def _parent(rel: bytes) -> bytes:
    return rel.rpartition(b"/")[0]


def _is_dir(sig: Signature) -> bool:
    return stat.S_ISDIR(sig[4])


def diff_signatures(before: dict[bytes, Signature],
                    after: dict[bytes, Signature]) -> list[Change]:
    changes: list[Change] = []
    opaque: set[bytes] = set()
    for rel in sorted(after):  # parents before children
        now, then = after[rel], before.get(rel)
        if any(p in opaque for p in _ancestors(rel)):
            changes.append(Change(os.fsdecode(rel), ADD))
        elif then is None:
            changes.append(Change(os.fsdecode(rel), ADD))
        elif _is_dir(now) and (not _is_dir(then) or (now[0], now[7]) != (then[0], then[7])):
            opaque.add(rel)
            changes.append(Change(os.fsdecode(rel), OPAQUE))
        elif now != then:
            changes.append(Change(os.fsdecode(rel), ADD))
    for rel in sorted(set(before) - set(after)):
        parent = _parent(rel)
        if parent == b"" or (parent in after and parent not in opaque
                             and _is_dir(after[parent]) and _is_dir(before[parent])):
            changes.append(Change(os.fsdecode(rel), DELETE))
    return changes


def _ancestors(rel: bytes) -> list[bytes]:
    parts = rel.split(b"/")
    return [b"/".join(parts[:i]) for i in range(1, len(parts))]


def changes_since(root: Path, saved: Path) -> list[Change]:
    import pickle

    with open(saved, "rb") as f:
        before = pickle.load(f)  # our own file, outside the step's reach
    return diff_signatures(before, signatures(root))
