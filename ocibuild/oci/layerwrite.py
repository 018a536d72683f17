"""Deterministic tar layers from a directory tree or from a change set.

Entries are sorted by path bytes (so parents come before children), directories end
with "/", mtimes are clamped to SOURCE_DATE_EPOCH when given, owners go through the id
map, and hard links are found by (st_dev, st_ino) among the entries of the layer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

from ocibuild.errors import DiskFullError, OcibuildError, is_disk_full, reason
from ocibuild.idmap import IdMap
from ocibuild.oci import tarwriter as tw
from ocibuild.oci.layerstream import LayerSink, StreamResult

ADD = "add"
DELETE = "delete"
OPAQUE = "opaque"
CHANGE_KINDS = (ADD, DELETE, OPAQUE)

WHITEOUT_PREFIX = b".wh."
OPAQUE_MARKER = b".wh..wh..opq"

_WHITEOUT = "whiteout"  # plan action: an empty marker file that exists in no tree
WHITEOUT = _WHITEOUT
TAR_BLOCK = 512


@dataclass(frozen=True)
class Change:
    """One entry of a change set, relative to a root.

    kind "add": the file, directory or link at `path` in the root (a directory stands
    for itself, not for its contents); "delete": `path` was removed (a `.wh.NAME` entry);
    "opaque": the directory at `path` hides all lower contents (its entry plus
    `.wh..wh..opq`; list its new contents as "add" changes).
    """

    path: str
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in CHANGE_KINDS:
            raise ValueError(f"unknown change kind {self.kind!r}; use one of {CHANGE_KINDS}")


def keep_xattr(name: str) -> bool:
    """The xattrs a layer carries: file capabilities and user.* (minus overlayfs' own)."""
    if name == "security.capability":
        return True
    return name.startswith("user.") and not name.startswith("user.overlay.")


def walk_tree(root: bytes) -> list[bytes]:
    """Every path below root (root itself excluded), relative, unsorted."""
    found: list[bytes] = []
    stack = [b""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            for entry in it:
                child = rel + b"/" + entry.name if rel else entry.name
                found.append(child)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(child)
    return found


def plan_from_tree(root: bytes) -> dict[bytes, str]:
    try:
        return dict.fromkeys(walk_tree(root), ADD)
    except OSError as exc:
        where = os.fsdecode(exc.filename) if exc.filename else os.fsdecode(root)
        raise OcibuildError(f"cannot read {where} for the layer: {exc.strerror}") from exc


def plan_from_changes(root: bytes, changes: Iterable[Change]) -> dict[bytes, str]:
    """Archive paths and their actions for a change set, with every parent directory
    taken from the root so that the layer extracts with the right owners and modes."""
    plan: dict[bytes, str] = {}
    whiteouts: dict[bytes, bytes] = {}  # whiteout path -> path it deletes
    for change in changes:
        rel = normalize(change.path)
        for parent in _parents(rel):
            plan.setdefault(parent, ADD)
        if change.kind == ADD:
            plan[rel] = ADD
        elif change.kind == OPAQUE:
            plan[rel] = ADD
            plan[rel + b"/" + OPAQUE_MARKER] = _WHITEOUT
        else:
            head, _, name = rel.rpartition(b"/")
            marker = (head + b"/" if head else b"") + WHITEOUT_PREFIX + name
            plan[marker] = _WHITEOUT
            whiteouts[marker] = rel
    for marker, deleted in whiteouts.items():
        if plan.get(deleted) == ADD:  # replaced, not deleted: the add alone says it
            del plan[marker]
    return plan


def normalize(path: str) -> bytes:
    parts = [p for p in os.fsencode(path).split(b"/") if p not in (b"", b".")]
    if not parts or b".." in parts:
        raise OcibuildError(f"invalid path in change set: {path!r}")
    return b"/".join(parts)


def _parents(rel: bytes) -> list[bytes]:
    parts = rel.split(b"/")
    return [b"/".join(parts[:i]) for i in range(1, len(parts))]


class TarProducer:
    """Writes the entries of a plan, sorted, into a LayerSink."""

    def __init__(self, root: bytes, sink: LayerSink, source_date_epoch: int | None,
                 id_map: IdMap | None) -> None:
        self._root = root
        self._sink = sink
        self._sde = source_date_epoch
        self._id_map = id_map if id_map is not None and not id_map.is_identity else None
        self._links: dict[tuple[int, int], bytes] = {}

    def write_entries(self, entries: Iterable[tuple[bytes, str]]) -> None:
        for rel, action in entries:
            if action == _WHITEOUT:
                self._sink.write(tw.encode_header(tw.TarEntry(rel, tw.REGULAR)))
            else:
                self._write_path(rel)
        self._sink.write(tw.END_OF_ARCHIVE)

    def _write_path(self, rel: bytes) -> None:
        full = self._root + b"/" + rel
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            raise OcibuildError(
                f"cannot add {os.fsdecode(full)} to the layer: no such file") from None
        mode = st.st_mode
        entry = tw.TarEntry(rel, tw.REGULAR, mode=stat.S_IMODE(mode), mtime=self._mtime(st))
        entry.uid, entry.gid = self._owner(full, st)
        if stat.S_ISDIR(mode):
            entry.typeflag = tw.DIRECTORY
            entry.name = rel + b"/"
        elif not stat.S_ISDIR(mode) and st.st_nlink > 1 and (st.st_dev, st.st_ino) in self._links:
            entry.typeflag = tw.HARDLINK
            entry.linkname = self._links[(st.st_dev, st.st_ino)]
            self._sink.write(tw.encode_header(entry))
            return
        elif stat.S_ISREG(mode):
            entry.size = st.st_size
        elif stat.S_ISLNK(mode):
            entry.typeflag = tw.SYMLINK
            entry.linkname = os.readlink(full)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            entry.typeflag = tw.CHARDEV if stat.S_ISCHR(mode) else tw.BLOCKDEV
            entry.devmajor, entry.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            entry.typeflag = tw.FIFO
        else:
            return  # sockets and the like have no tar form; Docker skips them too
        if not stat.S_ISDIR(mode) and st.st_nlink > 1:
            self._links[(st.st_dev, st.st_ino)] = rel
        entry.xattrs = _xattrs(full)
        self._sink.write(tw.encode_header(entry))
        if entry.size:
            self._copy_data(full, entry.size)

    def _copy_data(self, full: bytes, size: int) -> None:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if self._sink.write_from_fd(fd, size) != size:
                raise OcibuildError(f"{os.fsdecode(full)}: file shrank while writing the layer")
        finally:
            os.close(fd)
        self._sink.write(tw.padding(size))

    def _mtime(self, st: os.stat_result) -> int:
        mtime = st.st_mtime_ns // 1_000_000_000
        if self._sde is not None and mtime > self._sde:
            return self._sde
        return mtime

    def _owner(self, full: bytes, st: os.stat_result) -> tuple[int, int]:
        if self._id_map is None:
            return st.st_uid, st.st_gid
        uid = self._id_map.uid_to_container(st.st_uid)
        gid = self._id_map.gid_to_container(st.st_gid)
        if uid is None or gid is None:
            raise OcibuildError(
                f"{os.fsdecode(full)}: owner {st.st_uid}:{st.st_gid} is not mapped into the "
                "container's id range")
        return uid, gid


def _xattrs(full: bytes) -> dict[str, bytes]:
    try:
        names = os.listxattr(full, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return {}
        raise
    found: dict[str, bytes] = {}
    for name in names:
        if keep_xattr(name):
            try:
                found[name] = os.getxattr(full, name, follow_symlinks=False)
            except OSError as exc:
                if exc.errno != errno.ENODATA:
                    raise
    return found


def write_plan(root: bytes, plan: dict[bytes, str], out: BinaryIO, compression: str,
               source_date_epoch: int | None, id_map: IdMap | None) -> StreamResult:
    return write_entries(root, ((rel, plan[rel]) for rel in sorted(plan)), out, compression,
                         source_date_epoch, id_map, lambda: _planned_size(root, plan.items()))


def write_entries(root: bytes, entries: Iterable[tuple[bytes, str]], out: BinaryIO,
                  compression: str, source_date_epoch: int | None, id_map: IdMap | None,
                  planned_size: Callable[[], int]) -> StreamResult:
    """The layer of a plan given as its entries in layer order; `planned_size`: about
    how many tar bytes they make, asked only when the sink reports progress."""
    sink = LayerSink(out, compression)
    try:
        if sink.reports_progress:
            sink.expect(planned_size())
        TarProducer(root, sink, source_date_epoch, id_map).write_entries(entries)
    except OSError as exc:
        sink.abort()
        if is_disk_full(exc):  # the layer's own write, not a read of the tree
            raise DiskFullError(f"cannot write the layer: {reason(exc)}") from exc
        where = os.fsdecode(exc.filename) if exc.filename else os.fsdecode(root)
        raise OcibuildError(f"cannot read {where} for the layer: {exc.strerror}") from exc
    except BaseException:
        sink.abort()
        raise
    return sink.close()


def _planned_size(root: bytes, entries: Iterable[tuple[bytes, str]]) -> int:
    """About how many tar bytes `entries` make (headers and file data), for progress."""
    total = 1024
    for rel, kind in entries:
        total += 512
        if kind == _WHITEOUT:
            continue
        with contextlib.suppress(OSError):
            st = os.lstat(root + b"/" + rel)
            if stat.S_ISREG(st.st_mode):
                total += (st.st_size + 511) // 512 * 512
    return total
