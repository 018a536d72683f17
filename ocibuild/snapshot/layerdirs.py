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
from pathlib import Path
from typing import Any

from ocibuild.atomic import writer_prefix
from ocibuild.idspace import userns
from ocibuild.idspace.requests import Request, handler, request_type
from ocibuild.idspace.userns import tree_size
from ocibuild.oci import digest as _digest
from ocibuild.oci.layout import ImageLayout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocibuild.oci.extract import Marks

IMPLIED_XATTR = "user.ocibuild.implied"


def implies_dirs(layer: Path) -> bool:
    """Whether the layer directory was made with directories its layer lacks."""
    try:
        return os.getxattr(layer, IMPLIED_XATTR) == b"1"
    except OSError:
        return False


@request_type
class ExtractLayerDir(Request[dict[str, Any]]):
    """Blob `blob` (`size` bytes, uncompressed digest `diff_id`) of the layout at
    `layout` extracted into `dest`; or, when the layer lacks directories its entries
    are below and `below` lists the lower directories under it, into `chain_dest`."""

    stateless = True
    layout: str
    dest: str
    chain_dest: str | None
    below: tuple[str, ...]
    blob: str
    size: int
    diff_id: str
    chown: bool
    host_root: bool  # the builder is root: trusted.* overlay attributes work too


@handler(ExtractLayerDir)
def extract_layer_dir(args: ExtractLayerDir) -> dict[str, Any]:
    """(Runs under the sandbox's id mapping.) The extraction, via a temporary sibling;
    returns {"dest", "size", "existed"}."""
    layout = ImageLayout(Path(args.layout))
    dest = Path(args.dest)
    below = [Path(p) for p in args.below]
    if not below and dest.is_dir():
        return {"size": 0, "existed": True, "dest": str(dest)}
    # the file-op server has it loaded; the builder, which imports this module for its
    # request types, never extracts (the codecs and the tar reader: ~5 ms of its start)
    from ocibuild.oci.extract import apply_layer

    tmp = dest.with_name(f"{writer_prefix()}{dest.name}-{os.urandom(4).hex()}")
    tmp.mkdir(mode=0o755)
    try:
        digest, size = args.blob, args.size
        marks: Marks = []
        with layout.open_blob(digest, size) as blob:
            diff_id = apply_layer(blob, tmp, chown=args.chown,  # type: ignore[arg-type]
                                  marks=marks, below=below)
        if diff_id != args.diff_id:
            raise _digest.DigestMismatchError(
                f"layer {digest}: uncompressed digest {diff_id}, expected {args.diff_id}")
        _mark_whiteouts(marks, tmp, trusted=args.host_root)
        implied = any(kind == "implied" for kind, _ in marks)
        if implied:
            os.setxattr(tmp, IMPLIED_XATTR, b"1")
        if implied and below:
            dest = Path(args.chain_dest or dest)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, dest)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            userns.remove_local(tmp)  # another build finished it first
            return {"size": 0, "existed": True, "dest": str(dest)}
    except BaseException:
        userns.remove_local(tmp)
        raise
    return {"size": tree_size(dest), "existed": False, "dest": str(dest)}


def _mark_whiteouts(marks: Marks, root: Path, *, trusted: bool) -> None:
    """What the layer's whiteouts hide (paths resolved inside the layer by the
    extraction), as overlayfs reads it."""
    for kind, parts in marks:
        if kind == "whiteout":
            parent = _ensure_parent(root, parts[:-1])
            with _keep_times(parent):
                os.mknod(os.path.join(parent, parts[-1]), stat.S_IFCHR | 0o000,
                         os.makedev(0, 0))
    for kind, parts in marks:
        if kind == "opaque":
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
