"""A build killed while it wrote an output leaves its work files beside the output
(named for its process); the next export there removes them, never those of a live
process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.build.conftest import Builder, give_to, write_context


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("output", ["type=oci,dest={}/out.tar", "type=oci,tar=false,dest={}/lay",
                                    "type=docker,dest={}/out.tar", "type=local,dest={}/files"])
def test_the_next_export_removes_what_a_killed_one_left(builder: Builder, output: str) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": "FROM busybox:latest\n"
                                              "RUN echo x > /x\n"}, builder.user)
    outdir = builder.tmp / "outputs"
    outdir.mkdir()
    dead_dir = outdir / f".tmp-p{_dead_pid()}-abc"
    (dead_dir / "blobs").mkdir(parents=True)
    (dead_dir / "blobs" / "partial").write_bytes(b"x" * 4096)
    dead_file = outdir / f".tmp-p{_dead_pid()}-def"
    dead_file.write_bytes(b"half a tarball")
    live = outdir / f".tmp-p{os.getpid()}-ghi"  # this test process: alive
    live.mkdir()
    mine = outdir / "keep.txt"
    mine.write_text("the user's own file\n")
    give_to(outdir, builder.user)

    builder.build("-o", output.format(outdir), ctx)
    left = sorted(p.name for p in outdir.iterdir())
    assert dead_dir.name not in left and dead_file.name not in left
    assert live.name in left and "keep.txt" in left
    assert mine.read_text() == "the user's own file\n"
    assert not [n for n in left if n.startswith(".tmp-") and n != live.name], left


def test_an_output_directory_is_never_swept_outside_its_parent(builder: Builder) -> None:
    """Only the destination's own directory is looked at."""
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": "FROM busybox:latest\n"},
                        builder.user)
    elsewhere = builder.tmp / f".tmp-p{_dead_pid()}-elsewhere"
    elsewhere.mkdir()
    outdir: Path = builder.tmp / "outputs"
    outdir.mkdir()
    give_to(builder.tmp, builder.user)
    builder.build("-o", f"type=oci,dest={outdir}/out.tar", ctx)
    assert elsewhere.is_dir()
