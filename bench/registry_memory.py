"""Peak RSS of `ocibuild push` and `ocibuild pull` for an image with a 1 GB layer,
against Debian's docker-registry on 127.0.0.1 (goal: under 150 MB each).

Usage: .venv/bin/python bench/registry_memory.py [--size-mib 1024]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from _registry_common import OCIBUILD, REPO, random_image

from tests.support.registry_server import RegistryServer
from tests.support.rss import run_measured

GOAL_MB = 150


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ocib-bench-mem-"))
    server = RegistryServer.start("http", work / "registry")
    try:
        desc = random_image(work / "layout", [args.size_mib], "none")
        env = {"HOME": str(work), "PATH": os.environ["PATH"],
               "OCIBUILD_ROOT": str(work / "root")}
        ref = f"{server.host}/bench/big:1"
        push = run_measured([str(OCIBUILD), "push", f"oci:{work / 'layout'}:bench", ref], env)
        assert push.returncode == 0, push.stderr
        pull = run_measured([str(OCIBUILD), "pull", ref, "--output", f"oci:{work / 'pulled'}"],
                            env)
        assert pull.returncode == 0, pull.stderr
        size = args.size_mib
        print(f"image {desc.digest[:19]}: one {size} MiB layer (repo {REPO.name})")
        for name, m in (("push", push), ("pull", pull)):
            verdict = "ok" if m.peak_rss_mb < GOAL_MB else "OVER GOAL"
            print(f"{name}: peak RSS {m.peak_rss_mb:6.1f} MB  ({m.seconds:5.1f} s, "
                  f"{size / m.seconds:6.1f} MiB/s)  goal < {GOAL_MB} MB: {verdict}")
        return 0 if max(push.peak_rss_mb, pull.peak_rss_mb) < GOAL_MB else 1
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
