"""The container tests' private dockerd, and an image in which the host's Python and
this checkout's venv run (the busybox base, with the host's /usr mounted at run time)."""

from __future__ import annotations

import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.build.conftest import (  # noqa: F401  (fixtures the --load tests use)
    _compiled_package,
    builder,
    busybox_store_template,
)
from tests.support.dockerd import Dockerd
from tests.support.users import User, remove_tree

PYTHON_IMAGE = "ocibuild-test/busybox-host-usr:latest"


@pytest.fixture(scope="session")
def dockerd(sub_user: User) -> Iterator[Dockerd]:
    """A dockerd of the tests' own; its socket belongs to the group of `sub_user`, who
    loads images into it."""
    workdir = Path(tempfile.mkdtemp(prefix="ocib-dockerd-", dir="/tmp"))
    os.chmod(workdir, 0o711)
    daemon = Dockerd(workdir, socket_group=sub_user.name)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        remove_tree(workdir)


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


@pytest.fixture(scope="session")
def busybox_tar(busybox_rootfs: Path) -> Iterator[Path]:
    """The busybox base as a tarball anyone can read (its /root is private), with /lib
    and /lib64 pointing into /usr, as on merged-/usr Debian."""
    base = Path(tempfile.mkdtemp(prefix="ocib-bbtar-", dir="/tmp"))
    os.chmod(base, 0o755)
    path = base / "busybox.tar"
    with tarfile.open(path, mode="w") as tar:
        tar.add(busybox_rootfs, arcname=".")
        tar.addfile(_symlink("lib", "usr/lib"))
        tar.addfile(_symlink("lib64", "usr/lib64"))
    os.chmod(path, 0o644)
    yield path
    remove_tree(base)


@pytest.fixture(scope="session")
def python_image(dockerd: Dockerd, busybox_tar: Path) -> str:
    """The busybox base in the test dockerd: with the host's /usr mounted read-only, the
    host's Python (and this checkout's venv) runs in it."""
    dockerd.docker("import", str(busybox_tar), PYTHON_IMAGE)
    return PYTHON_IMAGE
