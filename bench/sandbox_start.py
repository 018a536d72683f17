"""Start cost of the sandbox: `/bin/true` in a step, against util-linux's unshare.

Usage: .venv/bin/python bench/sandbox_start.py [--runs 100] [--rootfs DIR]
Run it as the user to measure (root, or an unprivileged user with or without
/etc/subuid). Without --rootfs it makes a busybox root with rootfs/busybox/make.sh.
Goal: median under 30 ms and under 3x the unshare median.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ocibuild.sandbox import StepSpec, run_step  # noqa: E402
from ocibuild.sandbox.idmapping import plan_mapping  # noqa: E402


def median_ms(run: Callable[[], None], runs: int) -> float:
    run()  # warm caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rootfs", type=Path)
    opts = parser.parse_args()
    made = None
    rootfs = opts.rootfs
    if rootfs is None:
        made = Path(tempfile.mkdtemp(prefix="ocib-bench-"))
        rootfs = made / "rootfs"
        subprocess.run(["bash", str(REPO / "rootfs/busybox/make.sh"), str(rootfs)], check=True)
    try:
        spec = StepSpec(rootfs=rootfs, argv=["/bin/true"])

        def ours() -> None:
            result = run_step(spec, on_stdout=lambda _: None, on_stderr=lambda _: None)
            assert result.ok, result.description

        def peer() -> None:
            subprocess.run(["unshare", "-Urmpf", "--mount-proc", "chroot", str(rootfs),
                            "/bin/true"], check=True)

        ours_ms = median_ms(ours, opts.runs)
        peer_ms = median_ms(peer, opts.runs)
        print(f"id mapping: {plan_mapping().kind}, runs: {opts.runs}")
        print(f"ocibuild sandbox /bin/true   median {ours_ms:7.2f} ms  (goal < 30 ms)")
        print(f"unshare -Urmpf --mount-proc  median {peer_ms:7.2f} ms")
        print(f"ratio {ours_ms / peer_ms:.2f} (goal < 3)")
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)


if __name__ == "__main__":
    main()
