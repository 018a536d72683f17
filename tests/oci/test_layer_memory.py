"""Layer export holds a bounded amount of memory, whatever the size of the tree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO


def test_200mb_layer_is_written_with_bounded_memory(tmp_path: Path) -> None:
    # The same script as bench/ (which runs it at 2 GB); each layer is written by a fresh
    # child process whose peak RSS (VmHWM) the script reports and checks.
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench/layer_export.py"), "--size-mb", "200",
         "--max-rss-mb", "120", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    peaks = {m[0]: float(m[1]) for m in
             re.findall(r"^(gzip|zstd): .*peak RSS ([\d.]+) MB", proc.stdout, re.M)}
    assert set(peaks) == {"gzip", "zstd"}, proc.stdout
    assert all(peak < 120 for peak in peaks.values()), proc.stdout
