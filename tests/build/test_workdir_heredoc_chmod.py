"""WORKDIR, RUN here-documents with a shebang and symbolic --chmod, as BuildKit makes
them (issue 15, items 2, 3, 8 and 12). One row per behaviour; the image is read back.

Sources read (moby/buildkit, master of 2026-08):
- frontend/dockerfile/dockerfile2llb/convert.go, dispatchWorkdir: the WORKDIR mkdir
  carries the stage USER as written; solver/llbsolver/ops/user_linux.go, readUser: a
  user name missing from /etc/passwd (or a group missing from /etc/group) is not an
  error, the id stays 0 (a numeric user is UID:UID); the config keeps `User` as written.
- util/system/path.go, NormalizeWorkdir (NormalizePath with keepSlash=false): an
  absolute WORKDIR is kept as written (trailing slash and all); a relative one is
  path.Join'ed to the previous one (cleaned, so no trailing slash).
- convert.go, dispatchRun: a RUN whose whole command is one here-document starting
  with `#!` writes it to /dev/pipes/NAME (mode 0755, a read-only mount of the step)
  and runs that file through the shell, so the kernel runs the shebang's interpreter;
  the step's name ends with the document's first line ("RUN <<EOT (#!/bin/cat...)").
- convert_copy.go and tonistiigi/dchapes-mode: a --chmod that is not octal is a chmod(1)
  symbolic mode (umask 0) applied to each copied entry's own mode (fsutil copy's
  copyFileInfo), directories included (`X` adds search to directories).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.build import imagefs
from tests.build.conftest import Builder, write_context
from tests.build.table import Row, build_rows, config, text

FROM = "FROM busybox:latest\n"


def _owner(img: imagefs.Image, path: str) -> tuple[int, int]:
    info = img.files[path].info
    return info.uid, info.gid


def _mode(img: imagefs.Image, path: str) -> int:
    return stat.S_IMODE(img.files[path].info.mode)


def _history(img: imagefs.Image) -> list[str]:
    return [h.get("created_by", "") for h in img.config.get("history", [])]


# -- item 2: WORKDIR after USER -----------------------------------------------------------
def _unknown_user(img: imagefs.Image) -> None:
    assert config(img)["User"] == "ghost"
    assert _owner(img, "app") == (0, 0) and _owner(img, "app/sub") == (0, 0)


def _known_users(img: imagefs.Image) -> None:
    assert config(img)["User"] == "user:nosuchgroup"
    assert _owner(img, "nb") == (65534, 65534)  # a name: its passwd uid and gid
    assert _owner(img, "num") == (4321, 4321)  # a number: UID:UID
    assert _owner(img, "ug") == (1000, 10)  # user:group, both names
    assert _owner(img, "nogrp") == (1000, 1000)  # an unknown group leaves the user's


# -- item 3: the working directory as written -------------------------------------------
def _trailing_slash(img: imagefs.Image) -> None:
    assert config(img)["WorkingDir"] == "/a/b/"
    assert "WORKDIR /a/b/" in _history(img)
    assert img.files["a/b"].info.isdir()
    assert text(img, "pwd") == "/a/b\n"
    assert text(img, "a/b/f.txt") == "file\n"  # a relative COPY dest lands inside


def _relative_after(img: imagefs.Image) -> None:
    assert config(img)["WorkingDir"] == "/x/a"  # joined and cleaned: no slash kept
    assert text(img, "pwd") == "/x/a\n"


def _relative_after_slash(img: imagefs.Image) -> None:
    assert config(img)["WorkingDir"] == "/p/sub"


def _absolute_uncleaned(img: imagefs.Image) -> None:
    assert config(img)["WorkingDir"] == "/q/./r/../s/"
    assert img.files["q/s"].info.isdir() and "q/r" not in img.files


# -- item 8: here-documents with a shebang -----------------------------------------------
def _awk_shebang(img: imagefs.Image) -> None:
    assert text(img, "awk.txt") == "awk ran\n"
    assert not any(name.startswith("dev/pipes") for name in img.files)


def _env_shebang(img: imagefs.Image) -> None:
    # /usr/bin/env sh runs the script file (so $0 is its path, not sh)
    assert text(img, "env.txt") == "/dev/pipes/EOT in /\n"


def _no_shebang(img: imagefs.Image) -> None:
    assert text(img, "plain.txt") == "plain\n"


def _quoted_lone(img: imagefs.Image) -> None:
    # `<<"EOT"` alone is the document run as the script too (MustParseHeredoc)
    assert text(img, "quoted.txt") == "quoted\n"


# -- item 12: symbolic --chmod ------------------------------------------------------------
def _symbolic_file(img: imagefs.Image) -> None:
    assert _mode(img, "m/s.sh") == 0o750  # u=rwx,g=rx,o=
    assert _mode(img, "x/s.sh") == 0o755  # +x on 0644
    assert _mode(img, "w/ro.txt") == 0o444  # a+r,u-w on 0640
    assert _mode(img, "o/s.sh") == 0o644  # octal unchanged


def _symbolic_dir(img: imagefs.Image) -> None:
    # go+rX on a 0700 directory holding a 0600 file and a 0700 script
    assert _mode(img, "d") == 0o755
    assert _mode(img, "d/data.txt") == 0o644
    assert _mode(img, "d/run.sh") == 0o755


def _copy_from_stage(img: imagefs.Image) -> None:
    assert _mode(img, "s/t.txt") == 0o604  # u=rw,g=,o=r: '=' clears the class first


CHMOD_FILES: dict[str, str | bytes] = {
    "s.sh": "#!/bin/sh\n", "ro.txt": "ro\n", "tree/data.txt": "d\n", "tree/run.sh": "r\n",
}
CHMOD_MODES = {"s.sh": 0o644, "ro.txt": 0o640, "tree": 0o700, "tree/data.txt": 0o600,
               "tree/run.sh": 0o700}

ROWS = [
    Row("workdir-unknown-user", FROM + "USER ghost\nWORKDIR /app/sub\n", _unknown_user),
    Row("workdir-known-users", FROM + (
        "USER nobody\nWORKDIR /nb\nUSER 4321\nWORKDIR /num\nUSER user:wheel\nWORKDIR /ug\n"
        "USER user:nosuchgroup\nWORKDIR /nogrp\n"), _known_users),
    Row("workdir-trailing-slash", FROM + (
        "WORKDIR /a/b/\nRUN pwd > /pwd\nCOPY f.txt .\n"), _trailing_slash,
        files={"f.txt": "file\n"}),
    Row("workdir-relative", FROM + "WORKDIR /x\nWORKDIR a/\nRUN pwd > /pwd\n",
        _relative_after),
    Row("workdir-relative-after-slash", FROM + "WORKDIR /p/\nWORKDIR sub\n",
        _relative_after_slash),
    Row("workdir-absolute-uncleaned", FROM + "WORKDIR /q/./r/../s/\n", _absolute_uncleaned),
    Row("heredoc-awk", FROM + (
        "RUN <<EOT\n#!/usr/bin/awk -f\nBEGIN { print \"awk ran\" > \"/awk.txt\" }\nEOT\n"),
        _awk_shebang),
    Row("heredoc-env", FROM + (
        "RUN <<EOT\n#!/usr/bin/env sh\necho \"$0 in $PWD\" > /env.txt\nEOT\n"),
        _env_shebang),
    Row("heredoc-plain", FROM + "RUN <<EOT\necho plain > /plain.txt\nEOT\n", _no_shebang),
    Row("heredoc-quoted", FROM + "RUN <<\"EOT\"\necho quoted > /quoted.txt\nEOT\n",
        _quoted_lone),
    Row("chmod-symbolic-file", FROM + (
        "COPY --chmod=u=rwx,g=rx,o= s.sh /m/\nCOPY --chmod=+x s.sh /x/\n"
        "COPY --chmod=a+r,u-w ro.txt /w/\nCOPY --chmod=644 s.sh /o/\n"), _symbolic_file,
        files=CHMOD_FILES),
    Row("chmod-symbolic-dir", FROM + "COPY --chmod=go+rX tree /d\n", _symbolic_dir,
        files=CHMOD_FILES),
    Row("chmod-from-stage", FROM.rstrip() + " AS src\n"
        "RUN echo t > /t.txt && chmod 0640 /t.txt\n" + FROM
        + "COPY --from=src --chmod=u=rw,g=,o=r /t.txt /s/\n", _copy_from_stage),
]


def _modes(row: Row, ctx: Path) -> None:
    if row.files is CHMOD_FILES:
        for rel, mode in CHMOD_MODES.items():
            os.chmod(ctx / rel, mode)


@pytest.fixture(scope="module")
def built(module_builder: Builder) -> dict[str, imagefs.Image | str]:
    return {row.id: image for row, image in build_rows(module_builder, ROWS, "wdhc", _modes)}


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_row(row: Row, built: dict[str, imagefs.Image | str]) -> None:
    image = built[row.id]
    assert not isinstance(image, str), image
    row.check(image)


def test_cat_shebang_prints_the_script(builder: Builder) -> None:
    """`#!/bin/cat`: the step's output is the script itself (under /bin/sh, `hello $X`
    would be a missing command)."""
    ctx = write_context(builder.tmp / "cat", {"Dockerfile": (
        FROM + "RUN <<EOT\n#!/bin/cat\nhello $X\nEOT\n")}, builder.user)
    proc, _ = builder.build(ctx)
    assert "#!/bin/cat" in proc.stderr and "hello $X" in proc.stderr, proc.stderr
    # the step is named with the document's first line, as BuildKit names it
    assert "RUN <<EOT (#!/bin/cat...)" in proc.stderr, proc.stderr


def test_bad_symbolic_chmod_is_refused(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "bad", {
        "Dockerfile": FROM + "COPY --chmod=u+q f /f\n", "f": "f\n"}, builder.user)
    proc, _ = builder.build(ctx, check=False)
    assert proc.returncode != 0 and "u+q" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_symbolic_chmod_follows_the_source_mode(builder: Builder) -> None:
    """A symbolic mode is applied to the source's own mode: a source whose mode changed
    is copied again (the octal --chmod replaces the mode, so there the mode is no part
    of the key)."""
    ctx = write_context(builder.tmp / "key", {
        "Dockerfile": FROM + "COPY --chmod=+x s.sh /k/\n", "s.sh": "#!/bin/sh\n"},
        builder.user)
    os.chmod(ctx / "s.sh", 0o644)
    out = builder.tmp / "k1.oci"
    builder.build(ctx, "-o", f"type=oci,dest={out}")
    assert _mode(imagefs.load(out), "k/s.sh") == 0o755
    os.chmod(ctx / "s.sh", 0o600)
    out = builder.tmp / "k2.oci"
    builder.build(ctx, "-o", f"type=oci,dest={out}")
    assert _mode(imagefs.load(out), "k/s.sh") == 0o711
