"""An image whose layers repeat (two steps with the same diffID) builds and runs further
steps under both snapshotters, and COPY --from of such a stage works.

BuildKit (snapshot/containerd, containerd's snapshots/overlay) stacks each step on its
parent's snapshot, so a repeated diffID is just another layer: the image keeps both
copies (image-spec allows equal diffIDs in rootfs.diff_ids) and the tree is as if each
layer were applied in order. Under overlayfs the same directory cannot be listed twice in
lowerdir (ELOOP), so only its topmost occurrence is listed: everything the layer holds
comes from that occurrence either way. RUN --mount=from= of such a stage works too.
"""

from __future__ import annotations

import pytest

from tests.build import imagefs
from tests.build.conftest import Builder, step_states, write_context

_EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}

# The same file written twice with the same content and time: equal layers.
_REPEAT = (
    "RUN echo same > /same.txt && touch -d @1000000 /same.txt\n"
    "RUN rm /same.txt && echo between > /between.txt\n"
    "RUN echo same > /same.txt && touch -d @1000000 /same.txt\n"
)


@pytest.mark.parametrize("snapshotter", ["overlay", "native"])
def test_repeated_layers_stack_and_a_later_step_runs(builder: Builder, snapshotter: str) -> None:
    """The second build takes the repeated layers from the store (cached), not from the
    first build's step directories."""
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest\n" + _REPEAT + "ARG AFTER=1\n"
        + "RUN cat /same.txt /between.txt > /after.txt\n")}, builder.user)
    builder.build(ctx, "--snapshotter", snapshotter, env=_EPOCH)
    out = builder.tmp / "out.oci"
    proc, _ = builder.build(ctx, "--snapshotter", snapshotter, "--build-arg", "AFTER=2",
                            "-o", f"type=oci,dest={out}", env=_EPOCH)
    cached = [name for name, state in step_states(proc.stderr).items()
              if state == "CACHED" and " RUN " in name]
    assert len(cached) == 3, proc.stderr
    image = imagefs.load(out)
    diff_ids = image.config["rootfs"]["diff_ids"]
    assert len(diff_ids) == len(set(diff_ids)) + 1, diff_ids  # one layer repeats
    assert image.files["after.txt"].data == b"same\nbetween\n"
    assert image.files["same.txt"].data == b"same\n"


@pytest.mark.parametrize("snapshotter", ["overlay", "native"])
def test_copy_from_a_stage_with_repeated_layers(builder: Builder, snapshotter: str) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest AS rep\n" + _REPEAT
        + "FROM busybox:latest\nCOPY --from=rep /same.txt /between.txt /got/\n"
        "RUN cat /got/same.txt /got/between.txt > /got/both.txt\n"
        "RUN --mount=from=rep,target=/m cat /m/same.txt > /got/mounted.txt\n")}, builder.user)
    builder.build(ctx, "--snapshotter", snapshotter, "--target", "rep", env=_EPOCH)
    dest = builder.tmp / "out"
    builder.build(ctx, "--snapshotter", snapshotter, "-o", f"type=local,dest={dest}",
                  env=_EPOCH)
    assert (dest / "got" / "both.txt").read_text() == "same\nbetween\n"
    assert (dest / "got" / "mounted.txt").read_text() == "same\n"
