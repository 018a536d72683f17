"""RUN --mount=type=cache,from=STAGE,source=PATH (issue 15, item 9).

frontend/dockerfile/dockerfile2llb/convert_runmount.go mounts the cache over the `from`
state at `source` (a cache without `from` is over scratch); solver/llbsolver/mounts/
mount.go keys the persistent directory by the cache id and that base's ref
(`id + ":" + ref.ID()`), and makes it from the base only when no directory of that key
exists. So: the cache starts as a copy of the stage's directory, writes persist for the
next step and build using it, a cache of the same id without `from` is another one, and
a changed stage gives a fresh copy; the stage itself is never changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.build import imagefs
from tests.build.conftest import Builder, step_states, write_context


def _dockerfile(seed: str, bust: str) -> str:
    return (
        "FROM busybox:latest AS seed\n"
        f"RUN mkdir -p /data/sub && echo {seed} > /data/sub/f && echo top > /data/t "
        "&& chown -R 1000:1000 /data/sub\n"
        "FROM busybox:latest\n"
        f"RUN echo {bust} > /bust\n"
        "RUN --mount=type=cache,target=/c,from=seed,source=/data "
        "cat /c/sub/f > /got && stat -c %u /c/sub/f > /owner && ls /c > /before "
        "&& echo more >> /c/added\n"
        "RUN --mount=type=cache,target=/c,from=seed,source=/data ls /c > /list "
        "&& cat /c/added > /added\n"
        "RUN --mount=type=cache,target=/c ls /c > /plain\n"
        "COPY --from=seed /data /seedcopy\n"
    )


def _build(builder: Builder, ctx: Path, name: str, snapshotter: str
           ) -> tuple[str, imagefs.Image]:
    out = builder.tmp / f"{name}.oci"
    proc, _ = builder.build("--snapshotter", snapshotter, "-o", f"type=oci,dest={out}", ctx)
    return proc.stderr, imagefs.load(out)


def _text(image: imagefs.Image, path: str) -> str:
    data = image.files[path].data
    assert data is not None, path
    return data.decode()


@pytest.mark.parametrize("snapshotter", ["overlay", "native"])
def test_cache_mount_is_seeded_from_the_stage_once(builder: Builder, snapshotter: str
                                                   ) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": _dockerfile("seeded", "1")},
                        builder.user)
    _, image = _build(builder, ctx, "first", snapshotter)
    assert _text(image, "got") == "seeded\n"
    assert _text(image, "owner") == "1000\n"  # owners as in the stage
    assert _text(image, "before").split() == ["sub", "t"]
    assert _text(image, "list").split() == ["added", "sub", "t"]  # the same cache
    assert _text(image, "added") == "more\n"
    assert _text(image, "plain") == ""  # no from: another cache
    assert "seedcopy/added" not in image.files  # the stage is untouched

    # the same stage: the cache kept, not seeded again
    write_context(ctx, {"Dockerfile": _dockerfile("seeded", "2")}, builder.user)
    log, image = _build(builder, ctx, "second", snapshotter)
    assert step_states(log)["[stage-1 2/6] RUN echo 2 > /bust"] == "DONE"
    assert _text(image, "added") == "more\nmore\n"

    # another stage content: a cache of its own, made from it
    write_context(ctx, {"Dockerfile": _dockerfile("changed", "2")}, builder.user)
    _, image = _build(builder, ctx, "third", snapshotter)
    assert _text(image, "got") == "changed\n"
    assert _text(image, "added") == "more\n"
