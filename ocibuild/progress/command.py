"""The display of a command that is not a build (`pull`, `push`, `copy`): one step, as
BuildKit shows an export, with each blob's transfer under it:

    #1 push localhost:5000/app:1
    #1 sha256:9ad6… 12.58MB / 45.06MB 0.6s
    #1 sha256:9ad6… 45.06MB / 45.06MB 1.2s done
    #1 pushing manifest for localhost:5000/app:1@sha256:… done
    #1 DONE 1.3s

    with command_step("auto", f"push {ref}") as step:
        push_image(..., progress=step)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from ocibuild.progress import modes
from ocibuild.progress.transfer import StepProgress

MODES = ("auto", "plain", "tty", "rawjson", "json", "quiet")


@contextmanager
def command_step(mode: str, name: str, stream: TextIO | None = None
                 ) -> Iterator[StepProgress | None]:
    """Show one step named `name` on `stream` (stderr) in `mode` (a --progress value)
    while the block runs: started, then done or failed (the error's message), the
    display ended before the block's error goes on. None for quiet."""
    out = stream if stream is not None else sys.stderr
    renderer = modes.open_renderer(mode, out)
    if renderer is None:
        yield None
        return
    step = StepProgress(renderer, 1, name)
    try:
        with step.running():
            yield step
    finally:
        renderer.stop()
