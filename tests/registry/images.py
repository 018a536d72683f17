"""Test images made with the OCI model: the busybox base and images derived from it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ocibuild.oci.config import History, ImageConfig
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.image import load_image, write_image
from ocibuild.oci.layer import write_layer_from_dir
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.platform import host


def add_dir_layer(layout: ImageLayout, root: Path, compression: str = "gzip"
                  ) -> tuple[Descriptor, str]:
    with layout.blob_writer() as w:
        info = write_layer_from_dir(root, w, compression=compression, source_date_epoch=0)
        w.commit()
    return info.descriptor(), info.diff_id


def make_base(rootfs: Path, dest: Path, tag: str = "latest") -> tuple[ImageLayout, Descriptor]:
    """The busybox base image: one layer of the busybox root filesystem."""
    layout = ImageLayout.init(dest)
    layer, diff_id = add_dir_layer(layout, rootfs)
    platform = host()
    config = ImageConfig(
        architecture=platform.architecture, os=platform.os, variant=platform.variant,
        created="1970-01-01T00:00:00Z",
        config={"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        diff_ids=(diff_id,), history=(History(created="1970-01-01T00:00:00Z",
                                              created_by="busybox root filesystem"),),
    )
    return layout, write_image(layout, config, [layer], tags=[tag])


def derive(layout: ImageLayout, base_tag: str, tag: str, files: dict[str, bytes],
           compression: str = "gzip") -> Descriptor:
    """An image FROM the base with one more layer holding `files` (what a COPY makes)."""
    base = load_image(layout, base_tag)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, data in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.chmod(path, 0o644)
        layer, diff_id = add_dir_layer(layout, root, compression)
    config = base.config.with_layer(diff_id, History(created="1970-01-01T00:00:00Z",
                                                     created_by=f"COPY {' '.join(files)} /"))
    return write_image(layout, config, [*base.manifest.layers, layer], tags=[tag])
