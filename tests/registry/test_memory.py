"""Memory stays bounded: a 96 MiB layer (above the 64 MiB chunk size, so it goes up in
PATCH chunks) pushes and pulls with the process's peak RSS under 150 MB. The 1 GB
version is bench/registry_memory.py."""

from __future__ import annotations

import os
from pathlib import Path

from ocibuild.oci.image import load_image, write_image
from ocibuild.oci.layout import ImageLayout
from tests.registry.conftest import BaseImages, Cli
from tests.registry.images import add_dir_layer
from tests.support.paths import OCIBUILD
from tests.support.registry_server import RegistryServer
from tests.support.rss import run_measured

LIMIT_MB = 150


def test_large_layer_push_and_pull_in_bounded_memory(http_registry: RegistryServer,
                                                    images: BaseImages, cli: Cli,
                                                    tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.mkdir()
    with open(src / "random.bin", "wb") as f:
        for _ in range(96):
            f.write(os.urandom(1 << 20))
    layout = ImageLayout.init(tmp_path / "layout")
    layer, diff_id = add_dir_layer(layout, src, compression="none")
    (src / "random.bin").unlink()
    base = load_image(images.layout, "latest")
    layout.put_bytes(images.layout.read_blob(base.manifest.layers[0].digest))
    config = base.config.with_layer(diff_id, base.config.history[0])
    desc = write_image(layout, config, [base.manifest.layers[0], layer], tags=["big"])
    ref = f"{http_registry.host}/memory/big:1"

    pushed = run_measured([str(OCIBUILD), "push", f"oci:{layout.path}:big", ref], cli.env())
    assert pushed.returncode == 0, pushed.stderr
    print(f"push peak RSS {pushed.peak_rss_mb:.0f} MB")
    assert pushed.peak_rss_mb < LIMIT_MB, f"push peak RSS {pushed.peak_rss_mb:.0f} MB"

    dest = tmp_path / "pulled"
    pulled = run_measured([str(OCIBUILD), "pull", ref, "--output", f"oci:{dest}"], cli.env())
    assert pulled.returncode == 0, pulled.stderr
    print(f"pull peak RSS {pulled.peak_rss_mb:.0f} MB")
    assert pulled.peak_rss_mb < LIMIT_MB, f"pull peak RSS {pulled.peak_rss_mb:.0f} MB"
    got = ImageLayout.open(dest)
    assert load_image(got, "1").digest == desc.digest
    assert got.blob_size(layer.digest) == layer.size > 96 << 20
