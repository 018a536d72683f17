"""A step that fails at run time points at its Dockerfile lines, as buildx does: the
file and line, then the instruction with the lines around it, above the error."""

from __future__ import annotations

import pytest

from tests.build.conftest import Builder, write_context

DOCKERFILE = ("FROM busybox:latest\n"
              "RUN echo first > /first\n"
              "\n"
              "RUN echo about-to-fail; exit 7\n"
              "RUN echo never-runs\n")

EXCERPT = ("Dockerfile:4\n"
           "--------------------\n"
           "   2 |     RUN echo first > /first\n"
           "   3 |     \n"
           "   4 | >>> RUN echo about-to-fail; exit 7\n"
           "   5 |     RUN echo never-runs\n"
           "   6 |     \n"
           "--------------------\n")


@pytest.mark.parametrize("progress", ["plain", "rawjson"])
def test_a_failing_run_shows_its_line_and_excerpt(builder: Builder, progress: str) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": DOCKERFILE}, builder.user)
    proc, _ = builder.build(ctx, "--progress", progress, check=False)
    assert proc.returncode == 1
    # the excerpt, then the error itself on the last line
    assert EXCERPT + "ocibuild: error: failed to solve: process" in proc.stderr
    assert "exit code: 7" in proc.stderr.rstrip().splitlines()[-1]


@pytest.mark.parametrize("progress", ["plain", "rawjson"])
def test_a_copy_of_a_missing_file_shows_its_line(builder: Builder, progress: str) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest\n"
        "COPY \\\n"
        "  missing.txt /m\n"), "here.txt": "x"}, builder.user)
    proc, _ = builder.build(ctx, "--progress", progress, check=False)
    assert proc.returncode != 0
    assert ("Dockerfile:2\n"
            "--------------------\n"
            "   1 |     FROM busybox:latest\n"
            "   2 | >>> COPY \\\n"
            "   3 | >>>   missing.txt /m\n"
            "   4 |     \n"
            "--------------------\n") in proc.stderr
    assert "missing.txt" in proc.stderr.rstrip().splitlines()[-1]
