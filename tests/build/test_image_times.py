"""Image and history times follow BuildKit: a layer is as old as its cache record, so a
cached rebuild makes the very same image, and only a step that runs again changes it."""

from __future__ import annotations

import json
import time

from ocibuild.builder import history_times
from ocibuild.oci.config import History
from tests.build.conftest import Builder, copy_fixture, image_digest, write_context

BASE_TIME = "2024-01-02T03:04:05Z"


def _config(builder: Builder, manifest_digest: str) -> dict[str, object]:
    blobs = builder.root / "content" / "blobs" / "sha256"
    manifest = json.loads((blobs / manifest_digest.split(":")[1]).read_bytes())
    return json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_bytes())


def test_a_cached_rebuild_makes_the_same_image(builder: Builder) -> None:
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    first, _ = builder.build(ctx, "-t", "seed:one")
    time.sleep(1.1)  # times have one-second resolution: a new one would show
    again, _ = builder.build(ctx, "-t", "seed:one")
    assert image_digest(again.stderr) == image_digest(first.stderr)
    assert again.stdout == first.stdout  # the image ID

    time.sleep(1.1)
    fresh, _ = builder.build(ctx, "-t", "seed:one", "--no-cache")
    assert image_digest(fresh.stderr) != image_digest(first.stderr)
    # the records the --no-cache build wrote are the ones later builds reuse
    after, _ = builder.build(ctx, "-t", "seed:one")
    assert image_digest(after.stderr) == image_digest(fresh.stderr)


def test_history_times_are_the_layers_times(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {
        "Dockerfile": "FROM busybox:latest\nENV A=1\nRUN echo one > /one\n"
                      "LABEL x=y\nRUN echo two > /two\nCMD [\"sh\"]\n",
    }, builder.user)
    first, _ = builder.build(ctx, "-t", "times:1")
    time.sleep(1.1)
    # a new last step: the layers below keep their times, the new one is later
    (ctx / "Dockerfile").write_text((ctx / "Dockerfile").read_text()
                                    + "RUN echo three > /three\n")
    second, _ = builder.build(ctx, "-t", "times:2")
    old = _config(builder, image_digest(first.stderr))
    new = _config(builder, image_digest(second.stderr))
    old_h, new_h = old["history"], new["history"]
    assert isinstance(old_h, list) and isinstance(new_h, list)
    base = len(old_h) - 5
    assert new_h[:len(old_h)] == old_h  # ENV..CMD: same entries, same times
    env, run1, label, run2, cmd = old_h[base:]
    assert env["created"] == run1["created"]  # before the first new layer: its time
    assert label["created"] == run1["created"]  # after a layer: that layer's time
    assert cmd["created"] == run2["created"]
    assert old["created"] == cmd["created"]
    run3 = new_h[-1]
    assert run3["created"] > run2["created"]
    assert new["created"] == run3["created"]


def test_source_date_epoch_sets_and_clamps_every_time(builder: Builder) -> None:
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    epoch = 1_700_000_000
    proc, _ = builder.build(ctx, env={"SOURCE_DATE_EPOCH": str(epoch)})
    config = _config(builder, image_digest(proc.stderr))
    stamp = "2023-11-14T22:13:20Z"
    assert config["created"] == stamp
    history = config["history"]
    assert isinstance(history, list)
    # busybox was imported now, after the epoch: its entry is clamped too (as BuildKit)
    assert {h["created"] for h in history} == {stamp}


def _h(created: str = "", empty: bool = False) -> History:
    return History(created=created, created_by="x", empty_layer=empty)


def test_history_times_rules() -> None:
    t1, t2, t3 = "2025-01-01T00:00:01Z", "2025-01-01T00:00:02Z", "2025-01-01T00:00:03Z"
    history = [_h(BASE_TIME), _h(empty=True), _h(t1), _h(empty=True), _h(t2), _h(t3),
               _h(empty=True)]
    filled, created = history_times(history, 1, None)
    assert [h.created for h in filled] == [BASE_TIME, t1, t1, t1, t2, t3, t3]
    assert created == t3
    # only metadata changes: as old as the base image's last entry
    filled, created = history_times([_h(BASE_TIME), _h(empty=True)], 1, None)
    assert [h.created for h in filled] == [BASE_TIME, BASE_TIME] and created == BASE_TIME
    # an epoch: new entries take it; base entries keep theirs unless later
    epoch = "2024-06-01T00:00:00Z"
    filled, created = history_times([_h(BASE_TIME), _h("2025-05-05T00:00:00Z"), _h(t1)],
                                    2, epoch)
    assert [h.created for h in filled] == [BASE_TIME, epoch, epoch] and created == epoch


def test_no_time_anywhere_gives_now() -> None:
    filled, created = history_times([_h(empty=True)], 0, None)
    assert created[:4] == time.strftime("%Y", time.gmtime())
    assert filled[0].created == ""
