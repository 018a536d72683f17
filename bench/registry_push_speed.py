"""`ocibuild push` against `skopeo copy` for the same ~200 MB image (four gzip layers
of random data), alternating, each push to a fresh registry with empty storage, so
neither tool can skip or mount a blob (skopeo's blob-info cache would otherwise
mount from an earlier round's repository, and so would our blob-source record).
Prints per-round times, the medians and the ratio (goal: ours <= 1.0x skopeo).

Usage: .venv/bin/python bench/registry_push_speed.py [--rounds 5] [--layer-mib 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _registry_common import OCIBUILD, random_image

from tests.support.registry_server import RegistryServer


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layer-mib", type=int, default=50)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ocib-bench-push-"))
    try:
        layout = work / "layout"
        random_image(layout, [args.layer_mib] * args.layers, "gzip")
        total = sum(f.stat().st_size for f in (layout / "blobs/sha256").iterdir()) / 2**20
        env = {"HOME": str(work), "PATH": os.environ["PATH"]}
        ours: list[float] = []
        theirs: list[float] = []
        for i in range(args.rounds):
            for tool in (("ours", "skopeo") if i % 2 == 0 else ("skopeo", "ours")):
                server = RegistryServer.start("http", work / f"reg-{i}-{tool}")
                try:
                    ref = f"{server.host}/bench/{tool}-{i}:1"
                    if tool == "ours":
                        run_env = dict(env, OCIBUILD_ROOT=str(work / f"root-{i}"))
                        ours.append(_timed([str(OCIBUILD), "push", f"oci:{layout}:bench",
                                            ref, "--jobs", "4"], run_env))
                    else:
                        theirs.append(_timed(["skopeo", "copy", "--quiet",
                                              "--dest-tls-verify=false",
                                              f"oci:{layout}:bench", f"docker://{ref}"], env))
                finally:
                    server.stop()
            print(f"round {i + 1}: ocibuild {ours[-1]:.2f} s   skopeo {theirs[-1]:.2f} s")
        mo, ms = statistics.median(ours), statistics.median(theirs)
        print(f"image: {args.layers} x {args.layer_mib} MiB layers, {total:.0f} MiB of blobs")
        print(f"median: ocibuild push {mo:.2f} s ({total / mo:.0f} MiB/s), "
              f"skopeo copy {ms:.2f} s ({total / ms:.0f} MiB/s)")
        print(f"ratio ocibuild/skopeo: {mo / ms:.2f}x (goal <= 1.0x)")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
