"""Start cost of the sandbox: `/bin/true` in a step, against util-linux's unshare.

Usage: .venv/bin/python bench/sandbox_start.py [--runs 100] [--rootfs DIR]
Run it as the user to measure (root, or an unprivileged user with or without
/etc/subuid). Without --rootfs it makes a busybox root with rootfs/busybox/make.sh.

Prints four things, each labelled:
- the first step of the process, which also starts the sandbox's fork server (once per
  builder process), and for subordinate ids what newuidmap + newgidmap cost (paid once
  per builder, when the fork server's user namespace is mapped);
- the steady state: after a warm-up, ours and `unshare -Urmpf --mount-proc chroot ROOTFS
  /bin/true` alternate run by run (so a busy machine slows both alike), with medians
  and their ratio. Goal: median under 30 ms and ratio under 3;
- what step hardening and the default network add: the same step unconfined
  (`security="insecure"`) on the host's network, as every step ran before hardening
  and user-mode networking, against the default (confined, its own network namespace
  through the user-mode network helper), alternated run by run. Goal: at most 30 ms
  added per step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ocibuild.sandbox import StepSpec, run_step  # noqa: E402
from ocibuild.sandbox.idmapping import apply_mapping, plan_mapping  # noqa: E402

WARM_UP = 5
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def timed_ms(run: object) -> float:
    start = time.perf_counter()
    run()  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000


def newidmap_ms() -> float | None:
    """What newuidmap + newgidmap cost for one process (None without subordinate ids)."""
    plan = plan_mapping()
    if plan.kind != "subids":
        return None
    own_ns = os.readlink("/proc/self/ns/user")
    proc = subprocess.Popen(["unshare", "--user", "sleep", "30"])
    try:
        while os.readlink(f"/proc/{proc.pid}/ns/user") == own_ns:
            time.sleep(0.001)
        return timed_ms(lambda: apply_mapping(plan, proc.pid))
    finally:
        proc.kill()
        proc.wait()


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
    chroot = shutil.which("chroot", path=SBIN_PATH)
    if chroot is None:
        raise SystemExit("chroot (coreutils) not found")
    try:
        spec = StepSpec(rootfs=rootfs, argv=["/bin/true"])
        before_spec = StepSpec(rootfs=rootfs, argv=["/bin/true"], network="host",
                               security="insecure")

        def ours(spec: StepSpec = spec) -> None:
            result = run_step(spec, on_stdout=lambda _: None, on_stderr=lambda _: None)
            assert result.ok, result.description

        def peer() -> None:
            subprocess.run(["unshare", "-Urmpf", "--mount-proc", chroot, str(rootfs),
                            "/bin/true"], check=True)

        first_ms = timed_ms(ours)
        second_ms = timed_ms(ours)
        for _ in range(WARM_UP):
            ours()
            peer()
        ours_times, peer_times = [], []
        for _ in range(opts.runs):
            ours_times.append(timed_ms(ours))
            peer_times.append(timed_ms(peer))
        ours_ms = statistics.median(ours_times)
        peer_ms = statistics.median(peer_times)
        unconfined_times: list[float] = []
        for _ in range(opts.runs):
            unconfined_times.append(timed_ms(lambda: ours(before_spec)))
            ours_times.append(timed_ms(ours))
        before_ms = statistics.median(unconfined_times)
        after_ms = statistics.median(ours_times[opts.runs:])
        mapping_ms = newidmap_ms()
        print(f"user: {os.geteuid()}, id mapping: {plan_mapping().kind}, "
              f"measured runs: {opts.runs} each, after {WARM_UP} warm-up runs")
        print(f"first step (starts the fork server)  {first_ms:7.2f} ms  "
              f"(second step {second_ms:.2f} ms)")
        if mapping_ms is not None:
            print(f"newuidmap + newgidmap, once per builder  {mapping_ms:7.2f} ms")
        print(f"steady state: ocibuild sandbox /bin/true   median {ours_ms:7.2f} ms  "
              "(goal < 30 ms)")
        print(f"steady state: unshare -Urmpf --mount-proc  median {peer_ms:7.2f} ms")
        print(f"ratio {ours_ms / peer_ms:.2f} (goal < 3)")
        print(f"before: unconfined, host network          median {before_ms:7.2f} ms")
        print(f"after:  confined, default network          median {after_ms:7.2f} ms")
        print(f"added by hardening and the default network: {after_ms - before_ms:+.2f} ms "
              "per step (goal <= 30 ms)")
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)


if __name__ == "__main__":
    main()
