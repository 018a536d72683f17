"""A fully cached rebuild of a ten-stage fixture is fast and makes no root filesystem."""

from __future__ import annotations

import random
from pathlib import Path

from tests.build.conftest import Builder, copy_fixture, give_to, step_states

PARTS, FILES_PER_PART, FILE_SIZE = 9, 3, 760 * 1024  # about 20 MB of context


def _ten_stage_context(builder: Builder) -> Path:
    ctx = copy_fixture("ten-stages", builder.tmp / "ten", builder.user)
    for part in range(1, PARTS + 1):
        d = ctx / "data" / f"part{part}"
        d.mkdir(parents=True)
        rng = random.Random(part)
        for i in range(FILES_PER_PART):
            (d / f"f{i}.bin").write_bytes(rng.randbytes(FILE_SIZE))
    (ctx / "unrelated.txt").write_text("not copied by any step\n")
    give_to(ctx, builder.user)
    return ctx


def _snapshot_dirs(store: Path) -> set[str]:
    base = store / "snapshots"
    return {str(p.relative_to(base)) for sub in ("layers", "steps", "chains")
            if (base / sub).is_dir() for p in (base / sub).iterdir()}


def test_cached_rebuild_of_ten_stages_is_fast_and_materializes_nothing(
        builder: Builder) -> None:
    ctx = _ten_stage_context(builder)
    assert sum(f.stat().st_size for f in ctx.rglob("*.bin")) >= 20_000_000
    first, _ = builder.build(ctx)
    states = step_states(first.stderr)
    assert len(states) >= 30 and "DONE" in states.values()

    before = _snapshot_dirs(builder.root)
    again, elapsed = builder.build(ctx)
    states = step_states(again.stderr)
    assert len(states) >= 30
    assert set(states.values()) == {"CACHED"}, states
    assert elapsed < 0.5, elapsed
    assert _snapshot_dirs(builder.root) == before

    report = builder.api(ctx)
    assert report["cached"] == report["steps"] >= 30
    assert report["materialized"] == 0
