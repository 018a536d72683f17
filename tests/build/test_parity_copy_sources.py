"""Which sources a COPY copies, as BuildKit decides (issue 15, items 4, 5 and 10).

- Item 4: dockerfile2llb (frontend/dockerfile/dockerfile2llb/convert_copy.go) gives every
  local source `AllowWildcard` and `AllowEmptyWildcard`; the file op backend
  (solver/llbsolver/file/backend.go, docopy) returns without copying when a wildcard
  resolves to nothing. So a wildcard matching nothing is never an error, beside other
  sources (moby/buildkit testEmptyWildcard) or alone, and creates nothing (not even the
  destination directory). A missing source without wildcards still fails the build.
- Item 5: the context BuildKit receives lacks what `.dockerignore` excludes (fsutil's
  walker skips an excluded directory unless an exception pattern re-includes something
  in it), so a directory named explicitly but excluded is "not found", and one whose
  only remaining entries are re-included holds just those.
- Item 10: with --parents, convert_copy.go cuts the source at its first `/./` (the copy
  is made from the part before, keeping the path after it) and passes the rest as an
  include pattern (moby/patternmatcher: `**` spans any number of directories); a source
  without wildcards must exist (RequiredPaths).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.build import imagefs
from tests.build.conftest import Builder
from tests.build.table import Row, build_rows, text

FROM = "FROM busybox:latest\n"
FILES: dict[str, str | bytes] = {
    "a.txt": "a\n", "b.txt": "b\n",
    "secret/key": "k\n", "docs/keep.md": "keep\n", "docs/drop.md": "drop\n",
    "x/y/a.txt": "ya\n", "x/y/b.md": "yb\n", "x/y/z/c.txt": "yzc\n",
    "src/a.txt": "sa\n", "src/b.md": "sb\n", "src/x/y/c.txt": "sc\n",
}


def _missing(img: imagefs.Image, *paths: str) -> None:
    for path in paths:
        assert path not in img.files, f"{path} should not be in the image"


def _empty_beside(img: imagefs.Image) -> None:
    assert text(img, "d/a.txt") == "a\n"
    _missing(img, "d/nomatch")


def _empty_alone(img: imagefs.Image) -> None:
    # the copy returned before anything was made: no /alone directory either
    _missing(img, "alone")
    assert "bin/busybox" in img.files


def _empty_dir_wildcard(img: imagefs.Image) -> None:
    assert text(img, "w/a.txt") == "a\n" and text(img, "w/c.txt") == "yzc\n"


def _reincluded(img: imagefs.Image) -> None:
    assert text(img, "docs/keep.md") == "keep\n"
    _missing(img, "docs/drop.md")


def _ignored_in_wildcard(img: imagefs.Image) -> None:
    assert text(img, "all/a.txt") == "a\n"
    _missing(img, "all/secret", "all/key")


def _pivot(img: imagefs.Image) -> None:
    assert text(img, "dest/y/a.txt") == "ya\n"
    _missing(img, "dest/x", "dest/y/b.md", "dest/y/z")


def _pivot_exact(img: imagefs.Image) -> None:
    assert text(img, "dest/y/z/c.txt") == "yzc\n"
    _missing(img, "dest/x", "dest/y/a.txt")


def _double_star(img: imagefs.Image) -> None:
    assert text(img, "dest/src/a.txt") == "sa\n"
    assert text(img, "dest/src/x/y/c.txt") == "sc\n"
    _missing(img, "dest/src/b.md", "dest/a.txt")
    # parent directories made by the copy carry the context directory's mode
    assert img.files["dest/src/x"].info.isdir()
    assert img.files["dest/src/x"].info.mode & 0o777 == 0o750


def _pivot_double_star(img: imagefs.Image) -> None:
    assert text(img, "dest/y/a.txt") == "ya\n" and text(img, "dest/y/z/c.txt") == "yzc\n"
    _missing(img, "dest/y/b.md", "dest/x")


def _parents_dir(img: imagefs.Image) -> None:
    assert text(img, "p/x/y/z/c.txt") == "yzc\n" and text(img, "p/x/y/b.md") == "yb\n"


def _parents_from_stage(img: imagefs.Image) -> None:
    assert text(img, "s/b/c/f") == "st\n"
    _missing(img, "s/a")


def _wildcard_pivot(img: imagefs.Image) -> None:
    assert text(img, "dest/y/a.txt") == "ya\n"
    _missing(img, "dest/x", "dest/y/b.md")


def _pivot_exclude(img: imagefs.Image) -> None:
    assert text(img, "dest/y/b.md") == "yb\n" and text(img, "dest/y/a.txt") == "ya\n"
    _missing(img, "dest/y/z", "dest/y/z/c.txt")  # --exclude is read below the pivot


ROWS = [
    Row("empty-beside", FROM + "COPY a.txt nomatch* /d/\n", _empty_beside),
    Row("empty-alone", FROM + "COPY nomatch* nothing*.txt /alone/\n", _empty_alone),
    Row("empty-dir-wildcard", FROM + "COPY a.txt x/y/nomatch* x/*/z /w/\n",
        _empty_dir_wildcard),
    Row("missing-beside", FROM + "COPY a.txt missing.txt /d/\n", lambda img: None),
    Row("ignored-dir", FROM + "COPY secret /s/\n", lambda img: None,
        {".dockerignore": "secret\n"}),
    Row("ignored-dir-reincluded", FROM + "COPY docs /docs/\n", _reincluded,
        {".dockerignore": "docs\n!docs/keep.md\n"}),
    Row("ignored-in-wildcard", FROM + "COPY *.txt secre[t] /all/\n", _ignored_in_wildcard,
        {".dockerignore": "secret\n"}),
    Row("pivot", FROM + "COPY --parents ./x/./y/*.txt /dest/\n", _pivot),
    Row("pivot-exact", FROM + "COPY --parents x/./y/z/c.txt /dest/\n", _pivot_exact),
    Row("double-star", FROM + "COPY --parents ./src/**/*.txt /dest/\n", _double_star),
    Row("pivot-double-star", FROM + "COPY --parents x/./**/*.txt /dest/\n",
        _pivot_double_star),
    Row("wildcard-pivot", FROM + "COPY --parents [x]/./y/*.txt /dest/\n", _wildcard_pivot),
    Row("pivot-exclude", FROM + "COPY --parents --exclude=y/z x/./y /dest/\n",
        _pivot_exclude),
    Row("parents-dir", FROM + "COPY --parents x/y /p/\n", _parents_dir),
    Row("parents-missing", FROM + "COPY --parents x/./nope.txt /p/\n", lambda img: None),
    Row("parents-empty-wildcard", FROM + "COPY --parents x/./nope*.txt a.txt /p/\n",
        lambda img: None),
    Row("parents-from-stage", "FROM busybox:latest AS st\n"
        "RUN mkdir -p /a/b/c && echo st > /a/b/c/f\n"
        + FROM + "COPY --parents --from=st /a/./b/c/f /s/\n", _parents_from_stage),
]
FAILING = {
    "missing-beside": "missing.txt: not found",
    "ignored-dir": "secret: not found",
    "parents-missing": "nope.txt: not found",
}


def _prepare(row: Row, ctx: Path) -> None:
    (ctx / "src" / "x").chmod(0o750)


@pytest.fixture(scope="module")
def built(module_builder: Builder) -> dict[str, imagefs.Image | str]:
    rows = [Row(r.id, r.dockerfile, r.check, {**FILES, **r.files}, r.options) for r in ROWS]
    return {row.id: image for row, image in build_rows(module_builder, rows, "parity-copy",
                                                        _prepare)}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_copy_sources(row: Row, built: dict[str, imagefs.Image | str]) -> None:
    image = built[row.id]
    if row.id in FAILING:
        assert isinstance(image, str), "the build should have failed"
        assert FAILING[row.id] in image, image
        return
    assert not isinstance(image, str), f"the build failed: {image}"
    row.check(image)


def test_parents_empty_wildcard_copies_the_rest(built: dict[str, imagefs.Image | str]
                                                ) -> None:
    image = built["parents-empty-wildcard"]
    assert not isinstance(image, str), f"the build failed: {image}"
    assert text(image, "p/a.txt") == "a\n"
    assert "p/x" not in image.files
