"""A directory of .deb files (downloaded once, kept between runs) and the Debian base
`ocibuild rootfs debian` makes from it, offline, as the unprivileged user (made once a
run).

The base is made twice, side by side, for the test that both give the same digest:
the two builds take about as long as one on two cores. The second starts a few seconds
after the first, so that a time of day leaking into the image would differ."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.build.conftest import (
    Builder,
    _compiled_package,  # noqa: F401  (autouse)
)
from tests.support.netns import network_namespace
from tests.support.paths import OCIBUILD
from tests.support.users import User, remove_tree

# Debian's minbase, usr-is-merged (rootfs/debian/make.sh's merged /usr) and what the
# tests install in a RUN; downloaded on the first run only
DEBS_CACHE = Path("/var/cache/ocibuild-test-debs")
SUITE = "bookworm"
EXTRA_PACKAGE = "hello"
EPOCH = "1700000000"
MERGED_USR = "/usr/share/mmdebstrap/hooks/maybe-merged-usr"
SECOND_BUILD_DELAY = 3  # seconds


def _download(dest: Path) -> None:
    """What a connected machine does: mmdebstrap resolves the package set from the
    mirror the host's apt uses and hands over what it downloaded."""
    from ocibuild.rootfs.debian import host_mirror

    part = Path(tempfile.mkdtemp(prefix="ocib-debs-", dir=dest.parent))
    subprocess.run(["mmdebstrap", "--mode=root", "--variant=minbase", "--quiet",
                    f"--include={EXTRA_PACKAGE}", f"--hook-dir={MERGED_USR}",
                    "--skip=essential/unlink",
                    f"--customize-hook=sync-out /var/cache/apt/archives {part}",
                    SUITE, "/dev/null", host_mirror(SUITE)],
                   check=True, capture_output=True, timeout=600)
    for junk in ("lock", "partial"):
        path = part / junk
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    # a flat repository, as docs/air-gapped.md makes one, for apt-get in a RUN
    index = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=part,
                           check=True, capture_output=True).stdout
    (part / "Packages").write_bytes(index)
    for path in [part, *part.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(dest, ignore_errors=True)
    part.rename(dest)


@pytest.fixture(scope="session")
def debs_dir() -> Path:
    """Debian packages for a minbase bookworm plus `hello`, with a Packages index:
    downloaded once, then reused by every run (offline)."""
    if not (DEBS_CACHE / "Packages").is_file():
        _download(DEBS_CACHE)
    return DEBS_CACHE


@dataclass(frozen=True)
class DebianBase:
    layout: Path  # an OCI layout holding the image under the tag `bookworm`
    digest: str

    @property
    def context(self) -> str:
        return f"oci-layout://{self.layout}:{SUITE}"


def make_debian_base(user: User, debs: Path, dest: Path) -> tuple[subprocess.CompletedProcess[str],
                                                                  str]:
    """`ocibuild rootfs debian` (minbase, without EXTRA_PACKAGE) from `debs` into the
    layout `dest`, as `user`, with no network; returns the process and the image's
    digest."""
    with network_namespace() as netns:
        proc = netns.run([OCIBUILD, "--root", dest.parent / "store", "rootfs", "debian",
                          "--suite", SUITE, "--source", debs,
                          "--output", f"oci:{dest}"],
                         user=user, env={"SOURCE_DATE_EPOCH": EPOCH}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where, digest = proc.stdout.split()
    assert where == f"oci:{dest}:{SUITE}", proc.stdout
    return proc, digest


def _build_base(user: User, debs: Path, parent: Path) -> DebianBase:
    parent.mkdir()
    os.chown(parent, user.uid, user.gid)
    _, digest = make_debian_base(user, debs, parent / "debian.oci")
    return DebianBase(parent / "debian.oci", digest)


@pytest.fixture(scope="session")
def debian_builds(sub_user: User, debs_dir: Path) -> Iterator[tuple[Future[DebianBase],
                                                                    Future[DebianBase]]]:
    """The same base built twice, each with a store of its own, side by side."""
    base = Path(tempfile.mkdtemp(prefix="ocib-debian-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        with ThreadPoolExecutor(2, thread_name_prefix="debian-base") as pool:
            first = pool.submit(_build_base, sub_user, debs_dir, base / "first")
            time.sleep(SECOND_BUILD_DELAY)
            yield first, pool.submit(_build_base, sub_user, debs_dir, base / "second")
    finally:
        remove_tree(base)


@pytest.fixture(scope="session")
def debian_base(debian_builds: tuple[Future[DebianBase], Future[DebianBase]]) -> DebianBase:
    return debian_builds[0].result()


@pytest.fixture(scope="session")
def debian_base_again(debian_builds: tuple[Future[DebianBase],
                                          Future[DebianBase]]) -> DebianBase:
    """The second build of the base, made from the same packages at another time."""
    return debian_builds[1].result()


@pytest.fixture
def builder(sub_user: User, sub_tmp: Path) -> Builder:
    """Builds as the unprivileged user into an empty store of its own."""
    return Builder(sub_user, sub_tmp, sub_tmp / "store")
