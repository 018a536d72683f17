"""Cache mounts of a RUN step, seeded from a stage (`--mount=type=cache,from=STAGE`).

As BuildKit: a cache with `from` is kept apart from one of the same id without it,
keyed by what it is made from (the stage's result), and starts as a copy of the
stage's `source` directory when no directory of that key exists yet; later steps and
builds see what was written to it. The stage itself is never changed.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.cache.mounts import open_cache_mount
from ocibuild.graph import Mount

if TYPE_CHECKING:
    from ocibuild.solver.view import SolverView


def open_cache(solver: SolverView, m: Mount) -> contextlib.AbstractContextManager[Path]:
    """The directory of cache mount `m` for the duration of a step."""
    mode = m.mode if m.mode is not None else 0o755
    cache_id = m.id or m.target
    if m.source is None:
        return solver.store.cache_mount(cache_id, m.sharing, mode=mode, uid=m.uid or 0,
                                        gid=m.gid or 0)
    cache_id = f"{cache_id}:{solver.filesystem_key(m.source)}"
    path = m.source_path.strip("/")
    seed = None
    # BuildKit makes a new directory with uid/gid/mode in the stage when no source
    # is given: an empty cache with those, of its own key
    if path or (m.uid is None and m.gid is None and m.mode is None):
        def seed(dest: Path) -> None:
            solver.seed_cache(m.source, path, dest)  # type: ignore[arg-type]
    return open_cache_mount(solver.store, cache_id, m.sharing, mode=mode, uid=m.uid or 0,
                            gid=m.gid or 0, seed=seed)

