"""Build contexts of the benchmark cases, made at run time in a scratch directory.

seed and parallel are the test fixtures themselves (fixtures/NAME); bigctx's Dockerfile
lives in bench/cases/bigctx/. Generated files (bigctx's 20,000 small files
and 20 x 10 MB random files) are written next to a copy of them, never committed.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

CASES_DIR = Path(__file__).resolve().parent / "cases"
FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures"
SMALL_FILES = 20_000
SMALL_DIRS = 100
BIG_FILES = 20
BIG_SIZE = 10 << 20
# The cases whose context is bigctx's files (the same files, other Dockerfiles).
BIG_CASES = ("bigctx", "workdir")
# The file the one-file-changed case edits (the bigctx RUN step also touches it).
CHANGED_FILE = "small/d000/f00000.txt"


def make_context(name: str, dest: Path, *, small_files: int = SMALL_FILES,
                 big_files: int = BIG_FILES, seed: int = 8) -> Path:
    """Copy the case's directory to dest/NAME and generate its files; returns the context."""
    ctx = dest / name
    source = CASES_DIR / name
    shutil.copytree(source if source.is_dir() else FIXTURES_DIR / name, ctx)
    if name in BIG_CASES:
        _fill_bigctx(ctx, small_files, big_files, random.Random(seed))
    return ctx


def _fill_bigctx(ctx: Path, small_files: int, big_files: int, rng: random.Random) -> None:
    per_dir = -(-small_files // SMALL_DIRS)
    for i in range(small_files):
        directory = ctx / "small" / f"d{i // per_dir:03d}"
        if i % per_dir == 0:
            directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{i:05d}.txt").write_bytes(rng.randbytes(rng.randrange(64, 4096)))
    # The Dockerfile touches the last small file by its full-size name.
    last = ctx / "small" / "d099" / "f19999.txt"
    last.parent.mkdir(parents=True, exist_ok=True)
    if not last.exists():
        last.write_bytes(b"last\n")
    (ctx / "big").mkdir()
    for i in range(max(big_files, 1)):
        with open(ctx / "big" / f"r{i:02d}.bin", "wb") as f:
            f.write(os.urandom(BIG_SIZE if big_files else 1 << 20))


def change_one_file(ctx: Path, stamp: str) -> None:
    """Rewrite one small file in place (keeps its owner), so COPY and RUN must re-run."""
    with open(ctx / CHANGED_FILE, "w") as f:
        f.write(f"changed {stamp}\n")


def chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            os.lchown(os.path.join(dirpath, name), uid, gid)
