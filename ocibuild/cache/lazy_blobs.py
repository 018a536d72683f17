"""Layer blobs the store has not written yet, and how it makes them when asked.

A build whose only output is the store (no push, no `-o`, no `--cache-to`, no SBOM)
does not write its steps' layer blobs with the overlay snapshotter. A step's upper
directory already holds its layer as overlayfs reads it, and it becomes the layer's
directory under snapshots/layers/ when the build ends (snapshot/overlay.py). The layer's
tar is still made and compressed, for its digest and diff ID, but into nothing. Writing
a blob as big as a COPY's data beside that data doubled what a big COPY wrote: at 4 GB it
went past what the kernel keeps dirty, and the build ran at the disk's speed
(bench/RESULTS.md, cost curves). BuildKit, too, makes a layer's blob when an export
first needs it.

`snapshots/lazy/<hex>.json` says how to make blob `sha256:<hex>`: the layer's diff ID,
compression and SOURCE_DATE_EPOCH, and the step directory whose upper holds it until
the build ends (or, for a build killed first, until the next one clears its step
directories: keep_uppers_of_dead_steps). Layer tars are deterministic
(oci/layerwrite.py), so the same directory gives the same bytes again. The blob is
checked against its digest as it is written: a directory that no longer gives it is an
error, never a wrong blob. The store is the layout's `maker` (ImageLayout.has_blob,
open_blob, ensure_blob); prune makes the blob of a layer it removes when something
still refers to it. A blob is made from a directory no fsync ever reached: after a
power cut that directory may not give it any more (the error above), as a step's
upper directory with overlay's `volatile` may not.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild import store_paths
from ocibuild.errors import DigestMismatchError, OcibuildError
from ocibuild.idspace.requests import Request, handler, request_type
from ocibuild.oci import digest as _digest

if TYPE_CHECKING:
    from ocibuild.oci.layout import ImageLayout


@dataclass(frozen=True)
class Marker:
    """How to make one blob: the layer of `diff_id`, from step `step`'s upper directory
    (or, once the build has ended, the layer's directory)."""

    diff_id: str
    compression: str
    source_date_epoch: int | None
    step: str
    tar_size: int = 0  # bytes of the layer's tar: about what its directory holds


def write_marker(root: Path, digest: str, marker: Marker) -> None:
    path = Path(store_paths.lazy_blob_path(str(root), digest))
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(json.dumps(marker.__dict__))
    os.replace(tmp, path)


def read_marker(root: Path, digest: str) -> Marker | None:
    try:
        data = json.loads(Path(store_paths.lazy_blob_path(str(root), digest)).read_text())
        marker = Marker(str(data["diff_id"]), str(data["compression"]),
                        data["source_date_epoch"], str(data["step"]),
                        data.get("tar_size", 0))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    sde = marker.source_date_epoch
    if not _digest.is_digest(marker.diff_id) or (sde is not None and type(sde) is not int) \
            or type(marker.tar_size) is not int \
            or "/" in marker.step or marker.step in ("", ".", ".."):
        return None
    return marker


def markers(root: Path) -> dict[str, Marker]:
    """Every blob the store can make: digest -> marker."""
    found: dict[str, Marker] = {}
    with contextlib.suppress(OSError), os.scandir(root / store_paths.LAZY) as entries:
        for entry in entries:
            name, dot, ext = entry.name.partition(".")
            digest = f"{_digest.ALGORITHM}:{name}"
            if dot and ext == "json" and _digest.is_digest(digest) \
                    and (marker := read_marker(root, digest)) is not None:
                found[digest] = marker
    return found


def drop(root: Path, digest: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(store_paths.lazy_blob_path(str(root), digest))


def source_dir(root: Path, marker: Marker) -> Path | None:
    """The directory that holds the layer: the step's upper while its build runs, the
    layer's own directory after."""
    upper = root / store_paths.STEPS / marker.step / "upper"
    if upper.is_dir():
        return upper
    layer = root / store_paths.LAYERS / _digest.hex_of(marker.diff_id)
    return layer if layer.is_dir() else None


def can_make(root: Path, digest: str) -> bool:
    marker = read_marker(root, digest)
    return marker is not None and source_dir(root, marker) is not None


def keep_upper(root: Path, step_dir: Path, diff_id: str) -> bool:
    """Move the step's upper directory to be the directory of layer `diff_id`; False
    where it cannot (the store has that directory already, or the upper cannot move)."""
    layers = root / store_paths.LAYERS
    dest = layers / _digest.hex_of(diff_id)
    try:
        layers.mkdir(exist_ok=True)
        if dest.exists():
            return False
        os.rename(step_dir / "upper", dest)
    except OSError:
        return False
    # where copy_links finds the last copy of a context directory this step made
    with contextlib.suppress(OSError):
        (step_dir / store_paths.STEP_LAYER).write_text(dest.name)
    return True


def keep_uppers_of_dead_steps(root: Path, step_dirs: list[Path]) -> None:
    """(Step directories whose builds are gone, on their way to the trash.) The uppers
    their builds left blobs to make from, kept as their layers' directories."""
    by_name = {path.name: path for path in step_dirs}
    kept = [marker for marker in (markers(root).values() if by_name else ())
            if marker.step in by_name
            and keep_upper(root, by_name[marker.step], marker.diff_id)]
    if not kept:
        return
    import sqlite3

    from ocibuild.cache.records import RecordDB

    # recorded, or neither `cache du` nor prune would see them until a build stacks them
    with contextlib.suppress(sqlite3.Error, OSError):
        db = RecordDB(root / store_paths.RECORDS_DB)
        try:
            for marker in kept:
                db.touch_snapshot(marker.diff_id, marker.tar_size)
        finally:
            db.close()


_making: dict[str, threading.Lock] = {}
_making_guard = threading.Lock()


def make(root: Path, layout: ImageLayout, digest: str) -> None:
    """Write blob `digest` into `layout` from its layer's directory (once, whatever the
    threads asking); the marker goes once the blob is there."""
    with _making_guard:
        lock = _making.setdefault(digest, threading.Lock())
    with lock:
        if layout.blob_path(digest).is_file():
            return
        marker = read_marker(root, digest)
        source = source_dir(root, marker) if marker is not None else None
        if marker is None or source is None:
            raise OcibuildError(f"{layout.path}: blob {digest} is missing")
        from ocibuild.idspace import userns

        try:
            userns.request(_request(layout, source, digest, marker))
        except OcibuildError:
            # the build that made the upper moved it to the layer's directory meanwhile
            moved = source_dir(root, marker)
            if moved is None or moved == source:
                raise
            userns.request(_request(layout, moved, digest, marker))
        drop(root, digest)


def _request(layout: ImageLayout, source: Path, digest: str, marker: Marker) -> MakeBlob:
    return MakeBlob(layout=str(layout.path), root=str(source), digest=digest,
                    compression=marker.compression, source_date_epoch=marker.source_date_epoch)


@request_type
class MakeBlob(Request[bool]):
    """The layer blob `digest` into the layout at `layout`, made from the overlay-ready
    directory `root` (the layer's upper or extracted directory)."""

    stateless = True
    layout: str
    root: str
    digest: str
    compression: str
    source_date_epoch: int | None


@handler(MakeBlob)
def make_blob_in_userns(args: MakeBlob) -> bool:
    """(Runs under the sandbox's id mapping.)"""
    from ocibuild.oci.layer import write_layer_from_overlay_upper
    from ocibuild.oci.layout import ImageLayout

    layout = ImageLayout(Path(args.layout))
    try:
        with layout.blob_writer(args.digest) as w:
            write_layer_from_overlay_upper(Path(args.root), w, compression=args.compression,
                                           source_date_epoch=args.source_date_epoch)
            w.commit()
    except DigestMismatchError:
        raise OcibuildError(f"blob {args.digest}: the layer's directory {args.root} no longer "
                            "gives it (changed since the build that made it); "
                            "`ocibuild cache prune` removes it, a build makes it again"
                            ) from None
    return True
