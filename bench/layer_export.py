"""Layer export speed and memory: write a layer of a generated tree with gzip and zstd.

Prints, per compression, the input throughput (MB/s of uncompressed tar), the compressed
size and the peak RSS of the process that wrote the layer (each runs in a fresh child).

    .venv/bin/python bench/layer_export.py                  # ~1 GB tree
    .venv/bin/python bench/layer_export.py --size-mb 2048 --max-rss-mb 150
Exit status 1 when a peak RSS exceeds --max-rss-mb (or, with --check-speed, when a
throughput is under the goal: gzip 200 MB/s, zstd 100 MB/s).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEED_GOALS = {"gzip": 200.0, "zstd": 100.0}
MB = 1 << 20


def build_corpus(limit: int = 32 * MB) -> bytes:
    """Real file contents (programs, libraries, text) so compression sees realistic data."""
    chunks: list[bytes] = []
    total = 0
    for top in ("/usr/bin", "/usr/lib/python3", "/usr/share/doc", "/usr/lib/x86_64-linux-gnu"):
        for dirpath, _dirs, files in os.walk(top):
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                try:
                    with open(path, "rb") as f:
                        data = f.read(4 * MB)
                except OSError:
                    continue
                chunks.append(data)
                total += len(data)
                if total >= limit:
                    return b"".join(chunks)
    return (b"".join(chunks) or os.urandom(MB)) * 2


def generate_tree(root: Path, size: int, seed: int = 1) -> int:
    """A tree of about `size` bytes: half in large files, the rest in medium and small
    files spread over nested directories. Returns the bytes written."""
    rng = random.Random(seed)
    corpus = build_corpus()
    written = 0
    n = 0

    def put(rel: str, length: int) -> None:
        nonlocal written, n
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            left = length
            while left:
                start = rng.randrange(0, max(1, len(corpus) - MB))
                piece = corpus[start:start + min(left, MB)]
                f.write(piece)
                left -= len(piece)
        written += length
        n += 1

    while written < size // 2:
        put(f"big/blob{n:04d}.bin", min(64 * MB, size // 2 - written) or 1)
    while written < size * 8 // 10:
        put(f"lib/d{n % 50:02d}/m{n:05d}.so", rng.randrange(256 * 1024, 2 * MB))
    while written < size:
        put(f"share/d{n % 200:03d}/s{n % 7}/f{n:06d}.txt", rng.randrange(512, 64 * 1024))
    return written


def _child(tree: Path, compression: str, out: str) -> None:
    from ocibuild.oci.layer import write_layer_from_dir

    started = time.perf_counter()
    thread_started = time.thread_time()
    with open(out, "wb") as f:
        info = write_layer_from_dir(tree, f, compression=compression,
                                    source_date_epoch=1_700_000_000)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    hwm_kb = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                hwm_kb = int(line.split()[1])
    print(json.dumps({"seconds": seconds, "compressed": info.size, "peak_rss_kb": hwm_kb,
                      "cpu_seconds": usage.ru_utime + usage.ru_stime,
                      "producer_cpu_seconds": time.thread_time() - thread_started,
                      "digest": info.digest}))


def _tar_size(tree: Path) -> int:
    """Uncompressed tar bytes (what the throughput is measured against)."""
    total = 1024
    for dirpath, dirs, files in os.walk(tree):
        total += 512 * len(dirs)
        for name in files:
            size = os.lstat(os.path.join(dirpath, name)).st_size
            total += 512 + size + (-size % 512)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--max-rss-mb", type=float, default=150.0)
    parser.add_argument("--check-speed", action="store_true")
    parser.add_argument("--out", default=os.devnull, help="where the layer goes")
    parser.add_argument("--workdir", default=None, help="parent dir of the generated tree")
    parser.add_argument("--child", nargs=2, metavar=("TREE", "COMPRESSION"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(Path(args.child[0]), args.child[1], args.out)
        return 0

    work = Path(tempfile.mkdtemp(prefix="ocib-bench-", dir=args.workdir))
    failed = False
    try:
        tree = work / "tree"
        t0 = time.perf_counter()
        generate_tree(tree, args.size_mb * MB)
        tar_bytes = _tar_size(tree)
        print(f"tree: {tar_bytes / MB:.0f} MB of tar input, generated in "
              f"{time.perf_counter() - t0:.1f}s")
        for compression in ("gzip", "zstd"):
            proc = subprocess.run(
                [sys.executable, __file__, "--out", args.out, "--child", str(tree), compression],
                check=True, capture_output=True, text=True)
            result = json.loads(proc.stdout)
            speed = tar_bytes / MB / result["seconds"]
            rss_mb = result["peak_rss_kb"] / 1024
            goal = SPEED_GOALS[compression]
            # On a busy machine wall time lies; CPU time spread over 2 cores (or the
            # producer thread, when it is the longer path) gives what 2 idle cores would do.
            bound = max(result["cpu_seconds"] / 2, result["producer_cpu_seconds"])
            print(f"{compression}: {speed:.0f} MB/s (goal {goal:.0f}, x{speed / goal:.2f}; "
                  f"CPU-time bound on 2 idle cores {tar_bytes / MB / bound:.0f} MB/s), "
                  f"ratio {result['compressed'] / tar_bytes:.3f}, peak RSS {rss_mb:.1f} MB "
                  f"(limit {args.max_rss_mb:.0f})")
            if rss_mb > args.max_rss_mb or (args.check_speed and speed < goal):
                failed = True
    finally:
        shutil.rmtree(work)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
