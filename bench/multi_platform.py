"""A two-platform build of fixtures/seed (linux/amd64 and linux/arm64, the arm64 RUN
steps under QEMU through binfmt_misc) against the same build for this machine's
platform alone. Goal: two platforms cost less than twice one.

Each run is a cold build (a fresh copy of a store holding only the base images) by the
unprivileged ocib-sub, as bench/compare.py runs ocibuild. The base `busybox:latest` is
an image index made here: this machine's busybox and Debian's busybox-static for arm64
(the .deb scripts/test-binfmt.sh caches), imported offline and joined by a
multi-platform build of `FROM busybox-${TARGETARCH}`.

Usage (as root, after scripts/test-binfmt.sh): .venv/bin/python bench/multi_platform.py
[--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.paths import FIXTURES, OCIBUILD  # noqa: E402
from tests.support.platforms import arm64_unavailable, make_arm64_rootfs  # noqa: E402
from tests.support.users import SUB_USER, User, remove_tree  # noqa: E402

PLATFORMS = {"one (linux/amd64)": "linux/amd64",
             "two (linux/amd64,linux/arm64)": "linux/amd64,linux/arm64"}


def _run(user: User, *args: str | Path) -> float:
    started = time.perf_counter()
    proc = user.run([OCIBUILD, *args])
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"ocibuild {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return elapsed


def _template(user: User, work: Path) -> Path:
    """A store holding busybox:latest as an amd64+arm64 index (the user's)."""
    store = work / "template"
    amd64 = work / "rootfs-amd64"
    subprocess.run(["bash", REPO / "rootfs/busybox/make.sh", amd64], check=True,
                   capture_output=True)
    arm64 = make_arm64_rootfs(work / "rootfs-arm64")
    for source, name, platform in ((amd64, "busybox-amd64", "linux/amd64"),
                                   (arm64, "busybox-arm64", "linux/arm64")):
        subprocess.run([OCIBUILD, "--root", store, "import", "--platform", platform,
                        source, "--tag", name], check=True, capture_output=True)
    joined = work / "join"
    joined.mkdir()
    (joined / "Dockerfile").write_text("FROM busybox-${TARGETARCH}\n")
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", work], check=True)
    _run(user, "--root", store, "build", "--progress", "quiet", "--platform",
         PLATFORMS["two (linux/amd64,linux/arm64)"], "-t", "busybox:latest", joined)
    return store


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if (why := arm64_unavailable()) is not None:
        raise SystemExit(why)
    user = User.lookup(SUB_USER)
    work = user.make_tempdir("ocib-bench-mp-")
    try:
        template = _template(user, work)
        times: dict[str, list[float]] = {name: [] for name in PLATFORMS}
        for i in range(args.runs):
            for name, platforms in PLATFORMS.items():  # alternating: same machine load
                store = work / f"store-{i}-{len(times[name])}-{platforms.count(',')}"
                shutil.copytree(template, store, symlinks=True)
                subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", store], check=True)
                times[name].append(_run(user, "--root", store, "build", "--progress",
                                        "plain", "--platform", platforms, "-t", "seed",
                                        FIXTURES / "seed"))
        one, two = (statistics.median(t) for t in times.values())
        print(f"fixtures/seed, cold, {args.runs} runs, median seconds (ocibuild as {SUB_USER})")
        for name, values in times.items():
            print(f"  {name:<32} {statistics.median(values):6.2f}  "
                  f"(runs: {', '.join(f'{v:.2f}' for v in values)})")
        print(f"  two / one: {two / one:.2f} (goal: < 2)  cpus: {os.cpu_count()}")
    finally:
        remove_tree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
