"""An arm64 busybox root filesystem for the multi-platform tests, made offline from
the busybox-static:arm64 package scripts/test-binfmt.sh downloads once."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.paths import REPO

CACHE = Path(os.environ.get("OCIBUILD_TEST_CACHE", "/var/cache/ocibuild-tests"))
HANDLER = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")


def arm64_unavailable() -> str | None:
    """Why the arm64 tests cannot run here, or None."""
    import platform

    if platform.machine() != "x86_64":
        return (f"the multi-platform tests build amd64 natively and arm64 under QEMU; "
                f"this machine is {platform.machine()}")
    if not any((CACHE / "debs").glob("busybox-static_*_arm64.deb")):
        return (f"no busybox-static arm64 .deb in {CACHE}/debs: scripts/test-binfmt.sh "
                "could not download it (was the Debian mirror reachable?)")
    if not HANDLER.is_file() or not HANDLER.read_text().startswith("enabled"):
        return f"{HANDLER} is not registered: run scripts/test-binfmt.sh as root"
    flags = next((line for line in HANDLER.read_text().splitlines()
                  if line.startswith("flags:")), "")
    if "F" not in flags:
        return f"{HANDLER} is registered without the F flag: see scripts/test-binfmt.sh"
    return None


def make_arm64_rootfs(dest: Path) -> Path:
    """Unpack the .deb and make a busybox tree of its binary at `dest` (as root)."""
    deb = sorted((CACHE / "debs").glob("busybox-static_*_arm64.deb"))[-1]
    unpacked = dest.parent / "busybox-static-arm64"
    subprocess.run(["dpkg-deb", "-x", deb, unpacked], check=True)
    subprocess.run(["bash", REPO / "rootfs/busybox/make.sh", dest, unpacked / "bin/busybox"],
                   check=True, capture_output=True)
    return dest
