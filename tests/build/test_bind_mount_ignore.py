"""RUN --mount=type=bind of the build context shows it as COPY does: without what
.dockerignore excludes, in read-only and rw mounts, of the whole context or of a
directory; excluded files neither show nor count in the step's cache key."""

from __future__ import annotations

from pathlib import Path

from tests.build import imagefs
from tests.build.conftest import Builder, step_states, write_context
from tests.build.table import text

IGNORE = "secret.txt\n*.log\nlogs\n!logs/keep.log\nbuild/\nsub/hidden\n"
FILES: dict[str, str | bytes] = {
    ".dockerignore": IGNORE, "keep.txt": "keep\n", "secret.txt": "do not show\n",
    "a.log": "root log\n", "sub/b.log": "not anchored: shown\n", "sub/hidden": "hidden\n",
    "sub/shown": "shown\n", "logs/x.log": "x\n", "logs/keep.log": "kept\n",
    "build/out.bin": "out\n", "clean/c.txt": "c\n",
}
VISIBLE = [".", "./.dockerignore", "./Dockerfile", "./clean", "./clean/c.txt", "./keep.txt",
           "./logs", "./logs/keep.log", "./sub", "./sub/b.log", "./sub/shown"]


def _context(builder: Builder, dockerfile: str) -> Path:
    return write_context(builder.tmp / "ctx", {"Dockerfile": dockerfile, **FILES},
                         builder.user)


def _build_image(builder: Builder, ctx: Path) -> imagefs.Image:
    out = builder.tmp / "out.oci"
    builder.build("-o", f"type=oci,dest={out}", ctx)
    return imagefs.load(out)


def _listing(image: imagefs.Image, path: str) -> list[str]:
    return text(image, path).splitlines()


def test_a_read_only_bind_mount_shows_the_context_as_copy_does(builder: Builder) -> None:
    ctx = _context(builder, (
        "FROM busybox:latest AS stage\n"
        "RUN echo from the stage > /secret.txt\n"
        "FROM busybox:latest\n"
        "COPY . /copied/\n"
        "RUN cd /copied && find . | sort > /copied.txt\n"
        "RUN --mount=type=bind,target=/m cd /m && find . | sort > /mounted.txt"
        " && cat keep.txt logs/keep.log sub/b.log > /read.txt\n"
        "RUN --mount=type=bind,source=sub,target=/m cd /m && find . | sort > /sub.txt\n"
        "RUN --mount=type=bind,source=logs,target=/m cd /m && find . | sort > /logs.txt\n"
        "RUN --mount=type=bind,source=clean,target=/m cd /m && find . | sort > /clean.txt\n"
        "RUN --mount=type=bind,from=stage,target=/m cat /m/secret.txt > /stage.txt\n"))
    image = _build_image(builder, ctx)
    assert _listing(image, "mounted.txt") == VISIBLE
    assert _listing(image, "mounted.txt") == _listing(image, "copied.txt")
    assert text(image, "read.txt") == "keep\nkept\nnot anchored: shown\n"
    assert _listing(image, "sub.txt") == [".", "./b.log", "./shown"]
    assert _listing(image, "logs.txt") == [".", "./keep.log"]  # re-included by `!`
    assert _listing(image, "clean.txt") == [".", "./c.txt"]
    assert text(image, "stage.txt") == "from the stage\n"  # no .dockerignore for a stage


def test_reading_an_ignored_file_fails_the_step_itself(builder: Builder) -> None:
    ctx = _context(builder, "FROM busybox:latest\n"
                            "RUN --mount=type=bind,target=/m cat /m/secret.txt\n")
    proc, _ = builder.build(ctx, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1] == (
        'ocibuild: error: failed to solve: process "/bin/sh -c cat /m/secret.txt" did not '
        "complete successfully: exit code: 1"), proc.stderr
    assert step_states(proc.stderr) == {"[1/2] FROM busybox:latest": "CACHED",
                                        "[2/2] RUN --mount=type=bind,target=/m "
                                        "cat /m/secret.txt": "ERROR"}
    assert "cat: can't open '/m/secret.txt': No such file or directory" in proc.stderr
    assert "do not show" not in proc.stderr and "Traceback" not in proc.stderr


def test_mounting_an_ignored_directory_is_not_found(builder: Builder) -> None:
    ctx = _context(builder, "FROM busybox:latest\n"
                            "RUN --mount=type=bind,source=build,target=/m ls /m\n")
    proc, _ = builder.build(ctx, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1] == (
        "ocibuild: error: [2/2] RUN --mount=type=bind,source=build,target=/m ls /m: "
        "build: not found in the build context"), proc.stderr


def test_a_rw_bind_mount_copies_only_what_is_not_ignored(builder: Builder) -> None:
    ctx = _context(builder, (
        "FROM busybox:latest\n"
        "RUN --mount=type=bind,target=/m,rw cd /m && find . | sort > /listing.txt"
        " && echo changed > keep.txt && echo new > new.txt && mkdir made"
        " && echo in-made > made/f && (chown -R 1234:1234 made || true)"
        " && cat keep.txt > /seen.txt\n"))
    image = _build_image(builder, ctx)
    assert _listing(image, "listing.txt") == VISIBLE
    assert text(image, "seen.txt") == "changed\n"
    assert not [p for p in image.files if p == "m" or p.startswith("m/")], image.files.keys()
    assert (ctx / "keep.txt").read_text() == "keep\n"
    assert not (ctx / "new.txt").exists() and not (ctx / "made").exists()
    steps = builder.root / "snapshots" / "steps"
    assert not list(steps.glob("*/src")), "the mount's copy outlived the step"


def test_changing_an_ignored_file_keeps_the_step_cached(builder: Builder) -> None:
    ctx = _context(builder, "FROM busybox:latest\n"
                            "RUN --mount=type=bind,target=/m cat /m/keep.txt > /out\n")
    step = "[2/2] RUN --mount=type=bind,target=/m cat /m/keep.txt > /out"
    first, _ = builder.build(ctx)
    assert step_states(first.stderr)[step] == "DONE", first.stderr

    (ctx / "secret.txt").write_text("changed secret\n")
    (ctx / "logs" / "x.log").write_text("changed log\n")
    (ctx / "new.log").write_text("a new ignored file\n")
    second, _ = builder.build(ctx)
    assert step_states(second.stderr)[step] == "CACHED", second.stderr

    (ctx / "keep.txt").write_text("changed keep\n")
    third, _ = builder.build(ctx)
    assert step_states(third.stderr)[step] == "DONE", third.stderr
