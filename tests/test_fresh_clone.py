"""What CI and a new contributor start from: a clone with nothing beside it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.paths import REPO


def test_a_clone_without_shared_collects_every_test() -> None:
    base = Path(tempfile.mkdtemp(prefix="ocib-clone-"))
    try:
        clone = base / "ocibuild"
        subprocess.run(["git", "-c", f"safe.directory={REPO}", "clone", "-q", "--no-hardlinks",
                        str(REPO), str(clone)], check=True, capture_output=True, timeout=120)
        assert not (clone / ".." / "shared").exists()
        # the clone's own package and tests, with the installed dependencies
        res = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                              "-p", "no:cacheprovider"], cwd=clone, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        summary = res.stdout.strip().splitlines()[-1]
        assert "error" not in summary, summary
        collected = int(summary.split()[0])
        assert collected > 500, summary
    finally:
        shutil.rmtree(base, ignore_errors=True)
