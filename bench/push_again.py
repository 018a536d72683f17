"""A push of an image the registry already holds: `ocibuild push` against `skopeo copy`.

The image (busybox-sized layers: the cost is the requests and the start-up, not the
bytes) is pushed once by each tool to its own repository of one docker-registry on
127.0.0.1, then pushed again `--rounds` times, alternating. Prints the medians, the
ratio, and the requests ocibuild made on its last push (counted by a proxy).

Usage: .venv/bin/python bench/push_again.py [--rounds 15] [--layers 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from _registry_common import OCIBUILD, random_image

from tests.support.registry_server import Proxy, RegistryServer


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--layer-mib", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ocib-bench-push-again-"))
    server = RegistryServer.start("http", work / "registry")
    proxy = Proxy(server.port)
    try:
        layout = work / "layout"
        random_image(layout, [args.layer_mib] * args.layers, "gzip")
        env = {"HOME": str(work), "PATH": os.environ["PATH"],
               "OCIBUILD_ROOT": str(work / "root"),
               # to compare with another checkout: PYTHONPATH=/that/checkout
               **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
        ours_cmd = [str(OCIBUILD), "push", f"oci:{layout}:bench",
                    f"{server.host}/bench/ours:1", "--insecure-registry", server.host]
        skopeo_cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                      f"oci:{layout}:bench", f"docker://{server.host}/bench/skopeo:1"]
        _timed(ours_cmd, env)  # the first push: everything uploaded
        _timed(skopeo_cmd, env)
        ours: list[float] = []
        theirs: list[float] = []
        for i in range(args.rounds):
            for tool in (("ours", "skopeo") if i % 2 == 0 else ("skopeo", "ours")):
                if tool == "ours":
                    ours.append(_timed(ours_cmd, env))
                else:
                    theirs.append(_timed(skopeo_cmd, env))
        proxy.reset()
        _timed([str(OCIBUILD), "push", f"oci:{layout}:bench", f"{proxy.host}/bench/ours:1",
                "--insecure-registry", proxy.host], env)
        seen = Counter(f"{r.method} {'manifest' if '/manifests/' in r.path else 'blob'}"
                       for r in list(proxy.seen) if r.path != "/v2/")
        mo, ms = statistics.median(ours), statistics.median(theirs)
        print(time.strftime("measured %Y-%m-%d %H:%M UTC", time.gmtime()))
        print("ocibuild: ocibuild push oci:LAYOUT:bench 127.0.0.1:PORT/bench/ours:1 "
              "--insecure-registry 127.0.0.1:PORT")
        print("skopeo: skopeo copy --quiet --dest-tls-verify=false oci:LAYOUT:bench "
              "docker://127.0.0.1:PORT/bench/skopeo:1")
        print(f"image: {args.layers} x {args.layer_mib} MiB layers + config; "
              f"{args.rounds} pushes again each")
        print(f"median: ocibuild push {mo:.3f} s (min {min(ours):.3f}), "
              f"skopeo copy {ms:.3f} s (min {min(theirs):.3f})")
        print(f"ratio ocibuild/skopeo: {mo / ms:.2f}x")
        print("ocibuild's requests on a push again: "
              + ", ".join(f"{k} x{v}" for k, v in sorted(seen.items())))
        return 0
    finally:
        proxy.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
