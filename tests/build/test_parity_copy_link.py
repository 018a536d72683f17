"""COPY --link as BuildKit makes it (issue 15, item 13).

frontend/dockerfile/dockerfile2llb/convert_copy.go: with --link (and no --chmod) the copy
is made on `llb.Scratch()` and merged onto the stage (`llb.Merge`), so neither the layer
nor its cache key depend on the layers below: an edited earlier RUN leaves the --link
COPY cached, stacked on the new layers. In ordinary cases the image's files are the
same as without --link.
"""

from __future__ import annotations

from pathlib import Path

from tests.build import imagefs
from tests.build.conftest import Builder, step_states, write_context


def _explanations(log: str) -> str:
    return "\n".join(line for line in log.splitlines()
                     if "cache miss" in line or line.startswith("  "))


def _dockerfile(run: str, link: str = "--link ") -> str:
    return ("FROM busybox:latest\n"
            f"RUN echo {run} > /r && mkdir -p /app/conf && chmod 700 /app/conf\n"
            f"COPY {link}app/ /app/\n"
            "RUN cat /app/conf/a.conf /r > /seen\n")


def _build(builder: Builder, ctx: Path, name: str, *args: str) -> tuple[str, imagefs.Image]:
    out = builder.tmp / f"{name}.oci"
    proc, _ = builder.build("-o", f"type=oci,dest={out}", *args, ctx)
    return proc.stderr, imagefs.load(out)


def test_link_copy_stays_cached_when_a_step_below_changes(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": _dockerfile("one"),
                                              "app/conf/a.conf": "a\n"}, builder.user)
    _, first = _build(builder, ctx, "first")
    write_context(ctx, {"Dockerfile": _dockerfile("two")}, builder.user)
    log, second = _build(builder, ctx, "second", "--explain-cache")
    states = step_states(log)
    assert states["[2/4] RUN echo two > /r && mkdir -p /app/conf && chmod 700 /app/conf"] \
        == "DONE"
    assert states["[3/4] COPY --link app/ /app/"] == "CACHED", log
    assert states["[4/4] RUN cat /app/conf/a.conf /r > /seen"] == "DONE"
    text = _explanations(log)
    assert "COPY --link app/ /app/: cache miss" not in text, log
    # the last RUN: what it runs on (the copy over the new RUN's layer) changed
    assert "input changed: [3/4] COPY --link app/ /app/" in text, log
    # the same layer, stacked on the new one below it
    assert first.layer_digests[-2] == second.layer_digests[-2]
    assert first.layer_digests[-3] != second.layer_digests[-3]
    assert second.files["seen"].data == b"a\ntwo\n"


def test_link_copy_changed_file_is_explained_by_the_file(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": _dockerfile("one"),
                                              "app/conf/a.conf": "a\n"}, builder.user)
    _build(builder, ctx, "first")
    write_context(ctx, {"app/conf/a.conf": "b\n"}, builder.user)
    log, _ = _build(builder, ctx, "second", "--explain-cache")
    assert step_states(log)["[3/4] COPY --link app/ /app/"] == "DONE"
    text = _explanations(log)
    assert "file changed: app/conf/a.conf" in text, log
    assert "input changed: [2/4]" not in text  # nothing below a --link copy counts


def test_link_and_plain_copy_make_the_same_files(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"app/conf/a.conf": "a\n", "app/b.txt": "b\n"},
                        builder.user)
    images = {}
    for link in ("--link ", ""):
        write_context(ctx, {"Dockerfile": _dockerfile("one", link)}, builder.user)
        _, images[link] = _build(builder, ctx, f"img{len(images)}")
    linked, plain = images["--link "], images[""]

    def view(img: imagefs.Image) -> dict[str, tuple[object, ...]]:
        return {name: (e.info.type, e.info.mode, e.info.uid, e.info.gid, e.data,
                       e.info.linkname) for name, e in img.files.items()}

    assert view(linked) == view(plain)
    assert linked.files["app/conf"].info.mode & 0o777 == 0o755  # the copied directory's


def test_step_above_a_link_copy_sees_a_change_below_it(builder: Builder) -> None:
    """The --link layer is reused, but the filesystem it is stacked on is new: the RUN
    above reads it (BuildKit's merge op depends on both its inputs)."""
    dockerfile = ("FROM busybox:latest\nCOPY base.txt /base.txt\nCOPY --link app/ /app/\n"
                  "RUN cat /base.txt > /seen\n")
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": dockerfile, "base.txt": "1\n",
                                              "app/a.conf": "a\n"}, builder.user)
    _build(builder, ctx, "first")
    write_context(ctx, {"base.txt": "2\n"}, builder.user)
    log, image = _build(builder, ctx, "second")
    states = step_states(log)
    assert states["[3/4] COPY --link app/ /app/"] == "CACHED"
    assert states["[4/4] RUN cat /base.txt > /seen"] == "DONE"
    assert image.files["seen"].data == b"2\n"


def test_link_layer_holds_fresh_parent_directories(builder: Builder) -> None:
    """The copy is made on scratch: the destination's parents in its layer are new
    (0755, root's), whatever the stage had there, and replace those below (the caveat
    docker/docs notes for --link)."""
    dockerfile = ("FROM busybox:latest\n"
                  "RUN mkdir -p /opt/deep && chmod 700 /opt /opt/deep && chown 5:5 /opt\n"
                  "COPY --link f.txt /opt/deep/\n")
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": dockerfile, "f.txt": "f\n"},
                        builder.user)
    _, image = _build(builder, ctx, "img")
    assert set(image.top) == {"opt", "opt/deep", "opt/deep/f.txt"}
    for name in ("opt", "opt/deep"):
        info = image.top[name].info
        assert (info.mode & 0o7777, info.uid, info.gid) == (0o755, 0, 0), name
    assert image.files["opt/deep/f.txt"].data == b"f\n"


def test_link_with_chmod_is_an_ordinary_copy(builder: Builder) -> None:
    """convert_copy.go merges only `--link` copies without --chmod; with it the copy
    is made over the stage (its parents kept) and depends on the steps below."""
    def dockerfile(run: str) -> str:
        return ("FROM busybox:latest\n"
                f"RUN mkdir -p /opt && chmod 700 /opt && echo {run} > /r\n"
                "COPY --link --chmod=600 f.txt /opt/\n")
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": dockerfile("1"), "f.txt": "f\n"},
                        builder.user)
    _, image = _build(builder, ctx, "one")
    assert image.files["opt"].info.mode & 0o7777 == 0o700
    assert image.files["opt/f.txt"].info.mode & 0o7777 == 0o600
    write_context(ctx, {"Dockerfile": dockerfile("2")}, builder.user)
    log, _ = _build(builder, ctx, "two")
    assert step_states(log)["[3/3] COPY --link --chmod=600 f.txt /opt/"] == "DONE"
