"""The layers a build writes after its steps are done (overlay: in the background) show
as BuildKit shows them: an `exporting layers` status with the bytes written under
`exporting to image` (plain), a status with current/total (rawjson)."""

from __future__ import annotations

import json
import re

from tests.build.conftest import Builder, write_context

# 32 MiB of random data: compressing it takes a while after the step is done
BIG_RUN = ("FROM busybox:latest\n"
           "RUN head -c 33554432 /dev/urandom > /big.bin\n")
LAYERS = re.compile(r"#3 exporting layers (\S+) / (\S+)(?: \d+\.\ds)?( done)?")


def _context(builder: Builder, name: str) -> object:
    return write_context(builder.tmp / name, {"Dockerfile": BIG_RUN}, builder.user)


def test_plain_shows_exporting_layers_with_the_bytes_written(builder: Builder) -> None:
    proc, _ = builder.build(_context(builder, "plain"))
    log = proc.stderr
    assert "#3 exporting to image\n" in log, log
    lines = [m for m in map(LAYERS.fullmatch, log.splitlines()) if m]
    assert lines, log
    done = lines[-1]
    assert done.group(3) == " done" and done.group(1) == done.group(2), log
    # the tar of the 32 MiB file and its headers
    assert done.group(1).endswith("MB") and float(done.group(1)[:-2]) >= 33.5, log
    assert re.search(r"#3 exporting layers .* done\n#3 DONE \d+\.\ds\n", log), log


def test_rawjson_has_the_exporting_layers_status(builder: Builder) -> None:
    proc, _ = builder.build("--progress", "rawjson", _context(builder, "json"))
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    vertexes = {v["name"]: v for line in lines for v in line.get("vertexes", [])}
    export = vertexes["exporting to image"]
    statuses = [s for line in lines for s in line.get("statuses", [])
                if s["vertex"] == export["digest"] and s["id"] == "exporting layers"]
    assert statuses
    last = statuses[-1]
    assert last["current"] == last["total"] >= 32 << 20
    assert last["completed"] >= last["started"]
    assert [s["current"] for s in statuses] == sorted(s["current"] for s in statuses)
