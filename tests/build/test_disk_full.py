"""A full disk under the store or an output: one clear message (no traceback) naming
where it filled up and what the store holds, the failed build's own files freed before
it exits, and the next build working as soon as there is room again.

Each test mounts a small tmpfs (as root) for the store and outputs of a build run as
the unprivileged user, and fills it with a file it can delete."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.build.conftest import Builder, give_to, write_context
from tests.support.paths import OCIBUILD

MIB = 1024 * 1024
TMPFS_SIZE = 128 * MIB


@dataclass
class SmallDisk:
    mount: Path
    builder: Builder

    @property
    def store(self) -> Path:
        return self.builder.root

    def fill(self, leave: int) -> Path:
        """A filler file that leaves about `leave` bytes free."""
        st = os.statvfs(self.mount)
        filler = self.mount / "filler"
        size = st.f_bavail * st.f_frsize - leave
        with open(filler, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, max(size, 1))
        return filler

    def used(self) -> int:
        st = os.statvfs(self.mount)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def ocibuild(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return self.builder.user.run([OCIBUILD, "--root", self.store, *args],
                                     cwd=self.builder.tmp)

    def assert_clean(self) -> None:
        check = self.ocibuild("cache", "check")
        assert check.returncode == 0, check.stdout + check.stderr
        for left in ("trash", "steps"):  # nothing waits for a later build to free it
            path = self.store / "snapshots" / left
            assert not path.exists() or not list(path.iterdir()), list(path.iterdir())


@pytest.fixture
def small_disk(builder: Builder, busybox_store_template: Path) -> Iterator[SmallDisk]:
    mount = builder.tmp / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o",
                    f"size={TMPFS_SIZE},mode=0755,uid={builder.user.uid},"
                    f"gid={builder.user.gid}", "tmpfs", str(mount)], check=True)
    try:
        store = mount / "store"
        shutil.copytree(busybox_store_template, store, symlinks=True)
        give_to(store, builder.user)
        yield SmallDisk(mount, Builder(builder.user, builder.tmp, store))
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _assert_one_clear_message(proc: subprocess.CompletedProcess[str], store: Path) -> str:
    """The build failed with the disk-full message naming the store; returns its line."""
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    last = proc.stderr.rstrip().splitlines()[-1]
    assert last.startswith("ocibuild: error: "), proc.stderr
    assert "no space left on device" in last.lower(), last
    assert f"the store {store} holds " in last, last
    assert "ocibuild cache du" in last, last
    assert "cannot read" not in last, last
    return last


SNAPSHOTTERS = pytest.mark.parametrize("snapshotter", ["auto", "native"])


@SNAPSHOTTERS
def test_a_run_that_fills_the_disk_leaves_nothing_behind(small_disk: SmallDisk,
                                                          snapshotter: str) -> None:
    ctx = write_context(small_disk.builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest\nRUN dd if=/dev/zero of=/big bs=1M count=300\n")},
        small_disk.builder.user)
    before = small_disk.used()
    proc, _ = small_disk.builder.build("--snapshotter", snapshotter, ctx, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "No space left on device" in proc.stderr  # dd's own message
    last = proc.stderr.rstrip().splitlines()[-1]
    assert "did not complete successfully: exit code: 1" in last, last
    assert f"the store {small_disk.store} holds " in last, last
    assert "ocibuild cache du" in last, last
    # its step directory was freed before the build exited, not left for a later one
    assert small_disk.used() < before + 8 * MIB
    small_disk.assert_clean()
    ok = write_context(small_disk.builder.tmp / "ok", {"Dockerfile": (
        "FROM busybox:latest\nRUN echo fine > /fine\n")}, small_disk.builder.user)
    small_disk.builder.build(ok)


@SNAPSHOTTERS
@pytest.mark.parametrize("leave_mib", [1, 30])  # the base's snapshot, the COPY's layer
def test_a_copy_onto_a_full_disk_is_a_write_error_naming_the_store(
        small_disk: SmallDisk, snapshotter: str, leave_mib: int) -> None:
    ctx = write_context(small_disk.builder.tmp / "ctx", {
        "Dockerfile": "FROM busybox:latest\nCOPY big /big\n",
        "big": os.urandom(50 * MIB)}, small_disk.builder.user)
    filler = small_disk.fill(leave=leave_mib * MIB)
    proc, _ = small_disk.builder.build("--snapshotter", snapshotter, ctx, check=False)
    _assert_one_clear_message(proc, small_disk.store)
    small_disk.assert_clean()
    filler.unlink()
    small_disk.builder.build("--snapshotter", snapshotter, ctx)


def test_a_full_disk_under_the_database_is_a_message(small_disk: SmallDisk) -> None:
    """Not `sqlite3.OperationalError: database or disk is full`."""
    ctx = write_context(small_disk.builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest\nRUN echo one > /one\n")}, small_disk.builder.user)
    filler = small_disk.fill(leave=0)
    proc, _ = small_disk.builder.build(ctx, check=False)
    _assert_one_clear_message(proc, small_disk.store)
    filler.unlink()
    small_disk.assert_clean()
    small_disk.builder.build(ctx)


@pytest.mark.parametrize("kind", ["oci", "docker", "local"])
def test_an_output_onto_a_full_disk_is_a_message_and_leaves_no_part(
        small_disk: SmallDisk, kind: str) -> None:
    ctx = write_context(small_disk.builder.tmp / "ctx", {
        "Dockerfile": "FROM busybox:latest\nCOPY big /big\n",
        "big": os.urandom(30 * MIB)}, small_disk.builder.user)
    small_disk.builder.build(ctx)
    filler = small_disk.fill(leave=10 * MIB)
    dest = small_disk.mount / (kind if kind == "local" else f"{kind}.tar")
    proc, _ = small_disk.builder.build("-o", f"type={kind},dest={dest}", ctx, check=False)
    last = _assert_one_clear_message(proc, small_disk.store)
    assert str(dest) in last, last
    assert sorted(p.name for p in small_disk.mount.iterdir()) == ["filler", "store"]
    small_disk.assert_clean()
    filler.unlink()
    small_disk.builder.build("-o", f"type={kind},dest={dest}", ctx)
    assert (dest / "big" if kind == "local" else dest).stat().st_size >= 30 * MIB


def _rootfs_tar(dest: Path, size: int) -> Path:
    with tarfile.open(dest, "w") as tar:
        data = os.urandom(size)
        info = tarfile.TarInfo("data/big")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return dest


def test_an_import_onto_a_full_disk_is_a_message(small_disk: SmallDisk) -> None:
    tarball = _rootfs_tar(small_disk.builder.tmp / "rootfs.tar", 40 * MIB)
    give_to(tarball, small_disk.builder.user)
    filler = small_disk.fill(leave=20 * MIB)
    proc = small_disk.ocibuild("import", tarball, "--tag", "big:1")
    _assert_one_clear_message(proc, small_disk.store)
    small_disk.assert_clean()
    filler.unlink()
    again = small_disk.ocibuild("import", tarball, "--tag", "big:1")
    assert again.returncode == 0, again.stderr
