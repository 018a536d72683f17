"""Layers extracted once each, as overlayfs lower directories: ROOT/snapshots/layers/<hex>.

A layer's whiteouts become what overlayfs reads: `.wh.NAME` a 0/0 character device
NAME, `.wh..wh..opq` the xattr user.overlay.opaque=y on its directory (and
trusted.overlay.opaque when root, for a mount without userxattr). Extraction runs in
a temporary directory that is renamed into place, so a directory under layers/ is
always complete; when two builds race, the loser drops its copy.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from pathlib import Path
from typing import Any

from ocibuild.atomic import writer_prefix
from ocibuild.oci import digest as _digest
from ocibuild.oci.compression import open_uncompressed
from ocibuild.oci.extract import OPAQUE_MARKER, WHITEOUT_PREFIX, apply_layer, archive_parts
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.tarreader import HashingSource, TarReader
from ocibuild.snapshot import userns

_AUFS_META_PREFIX = ".wh..wh."


def tree_size(root: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def extract_layer_dir(args: dict[str, Any]) -> dict[str, Any]:
    """(Runs under the sandbox's id mapping.) Extract blob args["blob"] into args["dest"]
    for overlay use, via a temporary sibling; returns {"size": bytes on disk}."""
    layout = ImageLayout(Path(args["layout"]))
    dest = Path(args["dest"])
    if dest.is_dir():
        return {"size": 0, "existed": True}
    tmp = dest.with_name(f"{writer_prefix()}{dest.name}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(mode=0o755)
    try:
        digest, size = args["blob"], args["size"]
        with layout.open_blob(digest, size) as blob:
            diff_id = apply_layer(blob, tmp, chown=args["chown"])  # type: ignore[arg-type]
        if diff_id != args["diff_id"]:
            raise _digest.DigestMismatchError(
                f"layer {digest}: uncompressed digest {diff_id}, expected {args['diff_id']}")
        with layout.open_blob(digest, size) as blob:
            _mark_whiteouts(blob, tmp, trusted=args["host_root"])
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, dest)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            userns.remove_local(tmp)  # another build finished it first
            return {"size": 0, "existed": True}
    except BaseException:
        userns.remove_local(tmp)
        raise
    return {"size": tree_size(dest), "existed": False}


def _mark_whiteouts(blob: Any, root: Path, *, trusted: bool) -> None:
    reader = TarReader(HashingSource(open_uncompressed(blob)))
    written: set[tuple[str, ...]] = set()
    whiteouts: list[tuple[str, ...]] = []
    opaque: list[tuple[str, ...]] = []
    for member in reader:
        parts = tuple(archive_parts(member.name))
        if not parts:
            continue
        base = parts[-1]
        if base == OPAQUE_MARKER:
            opaque.append(parts[:-1])
        elif base.startswith(_AUFS_META_PREFIX):
            continue
        elif base.startswith(WHITEOUT_PREFIX):
            whiteouts.append((*parts[:-1], base[len(WHITEOUT_PREFIX):]))
        else:
            written.add(parts)
    for parts in whiteouts:
        if parts in written:
            continue  # replaced by this same layer
        parent = _ensure_parent(root, parts[:-1])
        with _keep_times(parent):
            os.mknod(os.path.join(parent, parts[-1]), stat.S_IFCHR | 0o000, os.makedev(0, 0))
    for parts in opaque:
        target = _ensure_parent(root, parts)
        os.setxattr(target, "user.overlay.opaque", b"y", follow_symlinks=False)
        if trusted:
            os.setxattr(target, "trusted.overlay.opaque", b"y", follow_symlinks=False)


def _ensure_parent(root: Path, parts: tuple[str, ...]) -> str:
    path = str(root)
    for part in parts:
        path = os.path.join(path, part)
        st = os.lstat(path) if os.path.lexists(path) else None
        if st is None:
            os.mkdir(path, 0o755)
        elif not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, "whiteout below a non-directory", path)
    return path


@contextlib.contextmanager
def _keep_times(path: str) -> Any:
    st = os.lstat(path)
    yield
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
