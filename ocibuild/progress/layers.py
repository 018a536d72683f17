"""The layers a build still writes after its steps are done, shown as BuildKit shows them:
an `exporting layers` status with the bytes of tar input written so far, under the
`exporting to image` step.

The writers run in the file-op server (another process); each reports its bytes in a
small file beside the step's upper directory (ocibuild.oci.layerstream.progress_file),
read here between two checks of the writers' futures.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ocibuild.progress.events import Sink
from ocibuild.progress.transfer import THROTTLE, StepProgress, export_step
from ocibuild.threads import ALL_COMPLETED, Task, wait

STATUS = "exporting layers"
POLL = 0.02


def read_progress(path: Path) -> tuple[int, int] | None:
    """(done, total) from a writer's progress file ("DONE TOTAL", space-padded)."""
    try:
        done, total = path.read_bytes()[:64].split()[:2]
        return int(done), int(total)
    except (OSError, ValueError):
        return None


def show_layer_writes(sink: Sink, index: int, writes: Sequence[tuple[Path, Task[Any]]]
                      ) -> StepProgress | None:
    """Wait for `writes` (progress file, writer) and show their bytes under step `index`,
    "exporting to image". Returns that step still open (the exporter ends it), or None
    when a writer failed (the step shown failed; the caller collects the error)."""
    step = export_step(sink, index)
    step.start()
    started = time.monotonic()
    next_report = 0.0
    while True:
        finished = all(future.done() for _, future in writes)
        now = time.monotonic()
        if finished or now >= next_report:
            next_report = now + THROTTLE
            done = total = 0
            for path, _ in writes:
                got = read_progress(path)
                if got is not None:
                    done += got[0]
                    total += got[1]
            step.emit("status", text=STATUS, current=done, total=max(done, total),
                      started=started, completed=finished)
        if finished:
            break
        # back as soon as the last writer ends: a sleep would add up to POLL to every build
        wait([future for _, future in writes], timeout=POLL, return_when=ALL_COMPLETED)
    if any(future.cancelled() or future.exception() is not None for _, future in writes):
        step.failed("writing a layer failed")
        return None
    return step
