"""The rebuild memo answers an unchanged, fully cached build exactly as the engine
would, and never once anything it rests on has changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.build.conftest import Builder, copy_fixture, image_digest, step_states, write_context
from tests.support.memo import memo_answers as user_memo_answers
from tests.support.paths import OCIBUILD


def memo_answers(builder: Builder, *args: str | Path, env: dict[str, str] | None = None
                 ) -> bool:
    """Would the memo answer `ocibuild build ARGS` as Builder.build runs it?"""
    return user_memo_answers(builder.user, builder.root, ["--progress", "plain", *args],
                             builder.tmp, env)


def test_a_cached_rebuild_is_answered_with_what_the_engine_prints(builder: Builder) -> None:
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    first, _ = builder.build(ctx, "-t", "seed:memo")
    assert "DONE" in step_states(first.stderr).values()
    assert memo_answers(builder, ctx, "-t", "seed:memo")  # the cold build left the memo

    answered, _ = builder.build(ctx, "-t", "seed:memo")
    shutil.rmtree(builder.root / "rebuilds")
    engine, _ = builder.build(ctx, "-t", "seed:memo")  # no memo: the engine's cached build
    assert set(step_states(engine.stderr).values()) == {"CACHED"}
    assert answered.stderr == engine.stderr
    assert answered.stdout == engine.stdout == first.stdout
    assert image_digest(answered.stderr) == image_digest(first.stderr)
    # the engine's cached build wrote the memo again
    assert memo_answers(builder, ctx, "-t", "seed:memo")
    # -q prints the image ID only, from the memo too
    quiet, _ = builder.build(ctx, "-t", "seed:memo", "-q")
    again, _ = builder.build(ctx, "-t", "seed:memo", "-q")
    assert quiet.stdout == again.stdout == first.stdout and again.stderr == ""


DOCKERFILE = """\
FROM busybox:latest
ARG FLAVOR
COPY . /ctx
RUN echo "$FLAVOR" > /flavor && ls -lR /ctx > /listing
"""
TAG = "memo:test"


def _context(builder: Builder) -> Path:
    return write_context(builder.tmp / "ctx", {
        "Dockerfile": DOCKERFILE, "a.txt": "aaaa\n", "sub/b.txt": "b\n",
        ".dockerignore": "ignored.txt\n",
    }, builder.user)


def _same_size_rewrite(ctx: Path, _: Builder) -> None:
    path = ctx / "a.txt"
    st = path.stat()
    path.write_text("AAAA\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the ctime tells


def _new_file(ctx: Path, b: Builder) -> None:
    write_context(ctx, {"c.txt": "new\n"}, b.user)


def _chmod(ctx: Path, _: Builder) -> None:
    (ctx / "a.txt").chmod(0o600)


def _dockerfile(ctx: Path, _: Builder) -> None:
    (ctx / "Dockerfile").write_text(DOCKERFILE + "LABEL changed=yes\n")


def _dockerignore(ctx: Path, _: Builder) -> None:
    (ctx / ".dockerignore").write_text("ignored.txt\nsub\n")


def _retag_base(ctx: Path, b: Builder) -> None:
    rootfs = b.tmp / "other-base"
    shutil.copytree(b.tmp / "busybox-copy", rootfs, symlinks=True)
    (rootfs / "etc" / "other-base").write_text("yes\n")
    subprocess.run(["chown", "-R", f"{b.user.uid}:{b.user.gid}", rootfs], check=True)
    proc = b.user.run([OCIBUILD, "--root", b.root, "import", rootfs, "--tag", "busybox:latest"])
    assert proc.returncode == 0, proc.stderr


def _no_cache_build(ctx: Path, b: Builder) -> None:
    time.sleep(1.1)  # a new record time, so a new image
    b.build(ctx, "-t", TAG, "--build-arg", "FLAVOR", "--no-cache", env={"FLAVOR": "one"})


def _prune_all(ctx: Path, b: Builder) -> None:
    proc = b.user.run([OCIBUILD, "--root", b.root, "cache", "prune", "--all"])
    assert proc.returncode == 0, proc.stderr
    assert not (b.root / "rebuilds").exists()  # prune drops the memos too


CHANGES: dict[str, Callable[[Path, Builder], None]] = {
    "file content (same size and mtime)": _same_size_rewrite,
    "new file": _new_file,
    "file mode": _chmod,
    "Dockerfile": _dockerfile,
    ".dockerignore": _dockerignore,
    "base image re-tagged": _retag_base,
    "records replaced by a --no-cache build": _no_cache_build,
}


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
def test_a_change_the_memo_rests_on_makes_the_engine_build(
        builder: Builder, busybox_rootfs: Path, change: str) -> None:
    if change == "base image re-tagged":
        shutil.copytree(busybox_rootfs, builder.tmp / "busybox-copy", symlinks=True)
    ctx = _context(builder)
    args = ("-t", TAG, "--build-arg", "FLAVOR", ctx)
    env = {"FLAVOR": "one"}
    first, _ = builder.build(*args, env=env)
    assert memo_answers(builder, *args, env=env)

    CHANGES[change](ctx, builder)
    expected = None
    if change == "records replaced by a --no-cache build":
        expected = image_digest(builder.build(*args, env=env)[0].stderr)
        # that build went to the engine (the memo's records were replaced) ...
        assert expected != image_digest(first.stderr)
        # ... and the memo it left answers with the new image from now on
        again, _ = builder.build(*args, env=env)
        assert image_digest(again.stderr) == expected
        return
    assert not memo_answers(builder, *args, env=env)
    after, _ = builder.build(*args, env=env)
    assert "DONE" in step_states(after.stderr).values(), after.stderr
    assert image_digest(after.stderr) != image_digest(first.stderr)


def test_environment_a_build_reads_is_part_of_the_memo(builder: Builder) -> None:
    ctx = _context(builder)
    args = ("-t", TAG, "--build-arg", "FLAVOR", ctx)
    one, _ = builder.build(*args, env={"FLAVOR": "one"})
    assert memo_answers(builder, *args, env={"FLAVOR": "one"})
    assert not memo_answers(builder, *args, env={"FLAVOR": "two"})
    two, _ = builder.build(*args, env={"FLAVOR": "two"})
    assert image_digest(two.stderr) != image_digest(one.stderr)
    assert not memo_answers(builder, *args, env={"FLAVOR": "one", "SOURCE_DATE_EPOCH": "1"})


@pytest.mark.parametrize("directories", [0, 20], ids=["walked alone", "walk shared"])
def test_a_moved_tag_is_put_back_by_the_engine(builder: Builder, directories: int) -> None:
    # a context of more than 16 directories is walked by two processes, and the store
    # is checked while the second one walks
    ctx = _context(builder)
    write_context(ctx, {f"d{i:02}/f": f"{i}\n" for i in range(directories)}, builder.user)
    args = ("-t", TAG, ctx)
    first, _ = builder.build(*args)
    other = write_context(builder.tmp / "other", {"Dockerfile": "FROM busybox:latest\n"
                                                   "LABEL other=yes\n"}, builder.user)
    builder.build("-t", TAG, other)
    assert not memo_answers(builder, *args)
    again, _ = builder.build(*args)
    assert set(step_states(again.stderr).values()) == {"CACHED"}
    inspect = builder.user.run([OCIBUILD, "--root", builder.root, "inspect", TAG])
    assert image_digest(first.stderr) in inspect.stdout
    assert memo_answers(builder, *args)


def test_pruned_records_make_the_steps_run_again(builder: Builder) -> None:
    ctx = _context(builder)
    args = ("-t", TAG, ctx)
    builder.build(*args)
    assert memo_answers(builder, *args)
    _prune_all(ctx, builder)
    after, _ = builder.build(*args)
    assert "DONE" in step_states(after.stderr).values(), after.stderr


def test_outputs_and_other_options_never_use_a_memo(builder: Builder) -> None:
    ctx = _context(builder)
    dest = builder.tmp / "out.oci"
    args = ("-t", TAG, "-o", f"type=oci,dest={dest}", ctx)
    builder.build(*args)
    shutil.rmtree(dest)
    assert not memo_answers(builder, *args)
    builder.build(*args)
    assert (dest / "index.json").is_file()
    for extra in (("--no-cache",), ("--pull",), ("--secret", "id=x,env=HOME"),
                  ("-f", "-"), ("--iidfile", "id.txt"), ("--debug",)):
        assert not memo_answers(builder, "-t", TAG, *extra, ctx), extra


def test_step_options_are_part_of_the_memo(builder: Builder) -> None:
    ctx = _context(builder)
    for option, value, other in (("--add-host", "db:10.0.0.5", "db:10.0.0.6"),
                                 ("--ulimit", "nofile=512:1024", "nofile=256:1024"),
                                 ("--shm-size", "32m", "16m"),
                                 ("--annotation", "org.example=1", "org.example=2"),
                                 ("--isolation", "userns", "auto")):
        builder.build("-t", TAG, option, value, ctx)
        assert memo_answers(builder, "-t", TAG, option, value, ctx), option
        assert not memo_answers(builder, "-t", TAG, option, other, ctx), option
