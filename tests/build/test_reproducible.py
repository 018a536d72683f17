"""SOURCE_DATE_EPOCH builds are reproducible across directories, mtimes and stores."""

from __future__ import annotations

import os
import time

from tests.build.conftest import Builder, copy_fixture, image_digest

EPOCH = 1_700_000_000  # 2023-11-14: older than any file the test writes


def test_two_clones_in_two_stores_give_the_same_manifest(
        builder: Builder, busybox_store_template: object) -> None:
    clones = []
    for name, age in (("clone-one", 0), ("elsewhere/clone-two", 86_400 * 3)):
        ctx = copy_fixture("repro", builder.tmp / name, builder.user)
        stamp = time.time() - age
        for p in [ctx, *ctx.rglob("*")]:
            os.utime(p, (stamp, stamp))
        clones.append(ctx)
    assert (clones[0] / "src/a.txt").stat().st_mtime != (clones[1] / "src/a.txt").stat().st_mtime
    other_store = builder.new_store(busybox_store_template, "store-two")  # type: ignore[arg-type]
    env = {"SOURCE_DATE_EPOCH": str(EPOCH)}
    first, _ = builder.build(clones[0], env=env)
    second, _ = builder.build(clones[1], env=env, store=other_store)
    assert image_digest(first.stderr) == image_digest(second.stderr)
    # and the epoch is what makes it so: without it the digest differs
    third, _ = builder.build(clones[0], store=other_store)
    assert image_digest(third.stderr) != image_digest(first.stderr)
