"""Base images made from local files: the recipes under the repository's rootfs/."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ocibuild.errors import OcibuildError

# a link to the repository's rootfs/ in a clone; a copy in an installed package
RECIPES_DIR = Path(__file__).parent / "recipes"
LABEL_PREFIX = "io.ocibuild.rootfs."


@dataclass(frozen=True)
class Recipe:
    """A root filesystem recipe: its name, what it makes, and the commands it needs."""
    name: str
    makes: str
    # (command on PATH, Debian package that has it)
    needs: tuple[tuple[str, str], ...]

    @property
    def script(self) -> Path:
        path = RECIPES_DIR / self.name / "make.sh"
        if not path.is_file():
            raise OcibuildError(f"the {self.name} recipe is not at {path}: the rootfs recipes "
                                "come with the source tree (rootfs/ in a clone of ocibuild)")
        return path

    def missing(self) -> list[str]:
        """The Debian packages this host lacks for the recipe."""
        return [pkg for cmd, pkg in self.needs if shutil.which(cmd) is None]

    def check_host(self) -> None:
        missing = self.missing()
        if missing:
            raise OcibuildError(f"the {self.name} recipe needs {', '.join(missing)}: "
                                f"install it with apt-get install {' '.join(missing)}")


RECIPES: dict[str, Recipe] = {
    "busybox": Recipe(
        "busybox",
        "busybox (about 1 MB) from the host's static busybox, with users root, user "
        "(1000) and nobody; for tests and demos",
        (("busybox", "busybox-static"),),
    ),
    "debian": Recipe(
        "debian",
        "a minimal Debian (minbase: dpkg, apt, bash, coreutils; about 100 MB) made by "
        "mmdebstrap from an apt mirror or a directory of .deb files",
        (("mmdebstrap", "mmdebstrap"), ("newuidmap", "uidmap"), ("dpkg-deb", "dpkg")),
    ),
}


def new_workdir() -> Path:
    """A private directory for a recipe's files (removed by the caller)."""
    return Path(tempfile.mkdtemp(prefix="ocibuild-rootfs-"))
