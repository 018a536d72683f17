"""Shared set-up for the registry benchmarks: repo on sys.path, test images."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ocibuild.oci.config import History, ImageConfig  # noqa: E402
from ocibuild.oci.descriptor import Descriptor  # noqa: E402
from ocibuild.oci.image import write_image  # noqa: E402
from ocibuild.oci.layer import write_layer_from_dir  # noqa: E402
from ocibuild.oci.layout import ImageLayout  # noqa: E402
from ocibuild.oci.platform import host  # noqa: E402

OCIBUILD = Path(sys.executable).parent / "ocibuild"


def random_image(dest: Path, layer_mib: list[int], compression: str, tag: str = "bench"
                 ) -> Descriptor:
    """An image of layers each holding one file of random bytes of the given size."""
    layout = ImageLayout.init(dest)
    platform = host()
    config = ImageConfig(architecture=platform.architecture, os=platform.os)
    layers = []
    scratch = dest.parent / "scratch"
    for i, mib in enumerate(layer_mib):
        scratch.mkdir(exist_ok=True)
        with open(scratch / f"data{i}.bin", "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
        with layout.blob_writer() as w:
            info = write_layer_from_dir(scratch, w, compression=compression,
                                        source_date_epoch=0)
            w.commit()
        (scratch / f"data{i}.bin").unlink()
        layers.append(info.descriptor())
        config = config.with_layer(info.diff_id, History(created_by=f"layer {i}"))
    scratch.rmdir()
    return write_image(layout, config, layers, tags=[tag])
