"""`-o type=local,dest=DIR`: the image's final filesystem, its layers applied in order.

The tree is built in a temporary directory beside DIR and renamed into place. When DIR
already holds files (e.g. `-o .`) the new tree is merged into it one top-level entry at
a time (each a rename), and nothing else in DIR is touched. Ownership is kept when
running as root; an unprivileged user gets the files as its own, as buildx does.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from ocibuild.atomic import work_dir_beside, writer_prefix
from ocibuild.idspace.userns import remove_tree
from ocibuild.oci.extract import apply_layer
from ocibuild.oci.layerref import LayerRef
from ocibuild.oci.layout import ImageLayout


def _apply_all(layout: ImageLayout, layers: Sequence[LayerRef], root: Path) -> None:
    for layer in layers:
        with layout.open_blob(layer.descriptor.digest, layer.descriptor.size) as blob:
            apply_layer(blob, root, chown=os.geteuid() == 0)  # type: ignore[arg-type]


def _swap_in(new: Path, dest: Path) -> None:
    """Rename `new` to `dest`, moving an existing entry aside first and removing it after."""
    if not os.path.lexists(dest):
        os.rename(new, dest)
        return
    old = dest.with_name(f"{writer_prefix()}old-{dest.name}")
    os.rename(dest, old)
    os.rename(new, dest)
    remove_tree(old)


def export_local(layout: ImageLayout, layers: Sequence[LayerRef], dest: Path) -> None:
    dest = dest.absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = work_dir_beside(dest, "local-", remove_tree)
    try:
        os.chmod(tmp, 0o755)
        _apply_all(layout, layers, tmp)
        if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
            with contextlib.suppress(FileNotFoundError):
                dest.rmdir()
            os.rename(tmp, dest)
            return
        for entry in sorted(os.listdir(tmp)):
            _swap_in(tmp / entry, dest / entry)
    finally:
        remove_tree(tmp)
