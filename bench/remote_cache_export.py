"""Exporting a build's remote cache against pushing the image's layers alone.

Builds a ~500 MB two-stage image once (random, incompressible data made by RUN steps,
copied into the final stage), then, alternating and each time to a fresh registry
(empty storage, a new port, so nothing can be skipped or mounted):

- push: the built image pushed by `push_names` (its layers, config, manifest);
- cache: the same, fully cached, build again with `--cache-to type=registry,mode=min`,
  minus the time of that cached build without `--cache-to` (so only the export counts).

Prints per-round times, the medians and the ratio cache/push (goal: <= 1.2). The
mode=max export is printed too, for information: it also sends the first stage's
layers, so its volume is larger.

Usage: .venv/bin/python bench/remote_cache_export.py [--rounds 3] [--mib 250]
Run as a user who can build (root works on this machine's kernel).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

from _registry_common import OCIBUILD, REPO

import ocibuild
from ocibuild.cache.store import Store
from ocibuild.registry import push_names
from tests.support.registry_server import RegistryServer

DOCKERFILE = """\
FROM busybox:latest AS gen
RUN dd if=/dev/urandom of=/one.bin bs=1048576 count={mib} 2>/dev/null
RUN dd if=/dev/urandom of=/two.bin bs=1048576 count={mib} 2>/dev/null

FROM busybox:latest
COPY --from=gen /one.bin /data/one.bin
COPY --from=gen /two.bin /data/two.bin
RUN echo done > /data/marker
"""


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mib", type=int, default=250, help="size of each of the two files")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ocib-bench-cache-", dir="/tmp"))
    try:
        rootfs = work / "rootfs"
        subprocess.run(["bash", str(REPO / "rootfs/busybox/make.sh"), str(rootfs)],
                       check=True, capture_output=True)
        root = work / "store"
        subprocess.run([str(OCIBUILD), "--root", str(root), "import", str(rootfs), "--tag",
                        "busybox:latest"], check=True, capture_output=True)
        ctx = work / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(DOCKERFILE.format(mib=args.mib))
        print(f"building a two-stage image with 2 x {args.mib} MiB ...", flush=True)
        started = time.monotonic()
        report = ocibuild.build(ctx, root=root, tags=["bench:cache"])
        print(f"  built in {time.monotonic() - started:.1f}s: {report.manifest_digest}")
        store = Store.open(root)
        desc = report.export.manifest  # type: ignore[union-attr]
        pushes, exports, exports_max = [], [], []
        for rnd in range(1, args.rounds + 1):
            for what in ("push", "cache", "max") if rnd % 2 else ("cache", "push", "max"):
                server = RegistryServer.start("http")
                try:
                    if what == "push":
                        t = _timed(partial(push_names, store.layout, desc,
                                           [f"{server.host}/bench/app:1"], store=None))
                        pushes.append(t)
                    else:
                        mode = "min" if what == "cache" else "max"
                        base = _timed(partial(ocibuild.build, ctx, root=root))
                        t = _timed(partial(ocibuild.build, ctx, root=root, cache_to=[
                            f"type=registry,ref={server.host}/bench/cache:1,mode={mode}"]))
                        t -= base
                        (exports if mode == "min" else exports_max).append(t)
                finally:
                    server.stop()
                print(f"round {rnd} {what:5s} {t:6.2f}s", flush=True)
        push_med = statistics.median(pushes)
        cache_med = statistics.median(exports)
        max_med = statistics.median(exports_max)
        print(f"\nmedian push of the image:       {push_med:6.2f}s")
        print(f"median cache export (min):      {cache_med:6.2f}s")
        print(f"median cache export (max):      {max_med:6.2f}s  (also the first stage)")
        print(f"ratio cache(min)/push: {cache_med / push_med:.2f}x (goal <= 1.2x)")
        print(f"ratio cache(max)/push: {max_med / push_med:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
