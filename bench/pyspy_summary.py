"""Summarize py-spy's raw (collapsed-stack) output: where time goes across all threads
and subprocesses, as the functions with the most samples on top (self) and on the stack,
and as the build's phases (hashing the context, the COPY's file copy, the layers' tar and
gzip, extraction, the overlay diff, the RUN's sandbox...).

A sample belongs to the phase of its innermost frame that names one (PHASES, in order of
the stack from the top): gzip under the tar writer counts as gzip, the tar writer under
the COPY step as tar. Run alone on a raw file: `python bench/pyspy_summary.py RAW [RATE]`.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame)
    return f"{m.group(1)} ({m.group(2)})" if m else frame


# (phase, file names a frame "function (path:line)" names that put a sample in it). py-spy
# shortens some paths to the bare file name (in the helper processes), so match names.
PHASES: list[tuple[str, tuple[str, ...]]] = [
    ("gzip and digest of layers", ("layerstream.py", "digest.py", "compression.py")),
    ("tar of layers (walk, headers, file data)", ("layerwrite.py", "tarwriter.py",
                                                  "/layer.py", "(layer.py")),
    ("finding the overlay upper's changes (the diff)", ("overlaydiff.py", "scan.py")),
    ("extracting layers", ("extract.py", "tarreader.py", "layerdirs.py")),
    ("COPY: copying the context into the snapshot", ("fileop.py",)),
    ("hashing the context (cache key)", ("checksum.py", "selection.py")),
    ("deleting old snapshots (trash)", ("trash.py",)),
    ("RUN: sandbox start and the step's process", ("nsinit.py", "zygote.py", "runner.py",
                                                   "step_runner.py")),
    ("rebuild memo", ("rebuild_memo.py",)),
    ("imports", ("importlib",)),
]


def _phase(frames: list[str]) -> str:
    for frame in reversed(frames):
        for phase, marks in PHASES:
            if any(mark in frame for mark in marks):
                return phase
    return "other (scheduler, store, threads waiting on locks)"


def phases(raw: Path, rate: int) -> str:
    """Busy time per phase of the build, all threads and processes together."""
    per: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if m:
            frames = [f for f in m.group(1).split(";")
                      if not f.startswith(("process ", "thread "))]
            if frames:
                per[_phase(frames)] += int(m.group(2))
    total = sum(per.values()) or 1
    return "\n".join(["by phase (busy thread time):"] + [
        f"  {n / rate:6.2f} s {100 * n / total:5.1f}%  {name}"
        for name, n in per.most_common()])


def summarize(raw: Path, rate: int, top: int = 12) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        count = int(m.group(2))
        frames = [f for f in m.group(1).split(";")
                  if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[_name(frames[-1])] += count
        for name in {_name(f) for f in frames if "ocibuild/" in f}:
            inclusive[name] += count
    if not total:
        return "(no samples)"
    lines = [f"{total} busy samples at {rate}/s ({total / rate:.2f} s of CPU-busy thread "
             "time, all threads and processes)", "", "top self:"]
    lines += [f"  {n / rate:6.2f} s {100 * n / total:5.1f}%  {name}"
              for name, n in own.most_common(top)]
    lines += ["", "top inclusive (ocibuild code):"]
    lines += [f"  {n / rate:6.2f} s {100 * n / total:5.1f}%  {name}"
              for name, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n\n" + phases(raw, rate)


if __name__ == "__main__":
    import sys

    print(summarize(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 250))
