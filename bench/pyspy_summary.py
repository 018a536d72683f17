"""Summarize py-spy's raw (collapsed-stack) output: where time goes across all threads
and subprocesses, as the functions with the most samples on top (self) and on the stack."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame)
    return f"{m.group(1)} ({m.group(2)})" if m else frame


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
    return "\n".join(lines)
