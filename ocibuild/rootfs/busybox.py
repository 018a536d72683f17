"""The busybox recipe: rootfs/busybox/make.sh makes the directory that is imported."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from ocibuild.errors import OcibuildError
from ocibuild.image_import import ImageDescription
from ocibuild.rootfs import LABEL_PREFIX, RECIPES


def make(work: Path) -> tuple[Path, ImageDescription]:
    """Make the busybox root filesystem under `work`; returns it and its description."""
    recipe = RECIPES["busybox"]
    recipe.check_host()
    dest = Path(tempfile.mkdtemp(prefix="busybox-", dir=work)) / "rootfs"
    proc = subprocess.run(["bash", str(recipe.script), str(dest)], stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise OcibuildError(f"the busybox recipe failed (exit {proc.returncode})")
    return dest, ImageDescription(
        created_by="ocibuild rootfs busybox",
        comment="busybox from the host's busybox-static",
        labels={f"{LABEL_PREFIX}recipe": "busybox"},
        cmd=("sh",),
    )
