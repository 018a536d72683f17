"""Layers: write deterministic tar layers, apply them safely. The public face of the
layer modules (tarwriter, layerstream, layerwrite, overlaydiff, tarreader, extract,
compression), which are private."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from ocibuild.errors import OcibuildError
from ocibuild.idmap import IdMap
from ocibuild.oci.compression import detect, open_uncompressed
from ocibuild.oci.extract import apply_layer
from ocibuild.oci.layerinfo import LayerInfo
from ocibuild.oci.layerstream import StreamResult
from ocibuild.oci.layerwrite import (
    ADD,
    DELETE,
    OPAQUE,
    Change,
    plan_from_changes,
    plan_from_tree,
    write_entries,
    write_plan,
)
from ocibuild.oci.mediatypes import oci_layer_type
from ocibuild.oci.overlaydiff import layer_entries, upper_layer_size

__all__ = [
    "ADD",
    "DELETE",
    "OPAQUE",
    "Change",
    "LayerInfo",
    "apply_layer",
    "detect",
    "open_uncompressed",
    "write_layer_from_changes",
    "write_layer_from_dir",
    "write_layer_from_overlay_upper",
]


def write_layer_from_dir(root: Path, out: BinaryIO, *, compression: str = "gzip",
                         source_date_epoch: int | None = None,
                         id_map: IdMap | None = None) -> LayerInfo:
    """A layer of every entry below `root` (not root itself), written to `out`.

    `id_map` translates the host ids lstat sees into container ids; an unmapped owner
    is an error.
    """
    media_type = _media_type(compression)
    base = os.fsencode(root)
    result = write_plan(base, plan_from_tree(base), out, compression, source_date_epoch, id_map)
    return _info(result, media_type, compression)


def write_layer_from_changes(root: Path, changes: Iterable[Change], out: BinaryIO, *,
                             compression: str = "gzip", source_date_epoch: int | None = None,
                             id_map: IdMap | None = None) -> LayerInfo:
    """A layer of a change set against `root`: added entries (and their parent
    directories) are taken from root, deletions become `.wh.NAME`, opaque directories
    get `.wh..wh..opq`."""
    media_type = _media_type(compression)
    base = os.fsencode(root)
    plan = plan_from_changes(base, changes)
    result = write_plan(base, plan, out, compression, source_date_epoch, id_map)
    return _info(result, media_type, compression)


def write_layer_from_overlay_upper(upper: Path, out: BinaryIO, *, compression: str = "gzip",
                                   source_date_epoch: int | None = None,
                                   id_map: IdMap | None = None) -> LayerInfo:
    """A layer of an overlayfs upper directory: 0/0 character devices become whiteouts,
    opaque directories become opaque markers, overlay xattrs are left out."""
    media_type = _media_type(compression)
    base = os.fsencode(upper)
    result = write_entries(base, layer_entries(base), out, compression, source_date_epoch,
                           id_map, lambda: upper_layer_size(base))
    return _info(result, media_type, compression)


def _media_type(compression: str) -> str:
    try:
        return oci_layer_type(compression)
    except ValueError as exc:
        raise OcibuildError(str(exc)) from None


def _info(result: StreamResult, media_type: str, compression: str) -> LayerInfo:
    return LayerInfo(digest=result.digest, diff_id=result.diff_id, size=result.size,
                     media_type=media_type, compression=compression,
                     tar_size=result.uncompressed_size)
