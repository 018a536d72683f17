"""Builds run as the unprivileged user ocib-sub, end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from tests.build.conftest import Builder, copy_fixture, step_states, write_context
from tests.support.users import User


def _run_image_from_layout(layout: Path, tag: str, tmp: Path) -> str:
    """umoci unpack the image, then run its Cmd in our sandbox (as root, the test)."""
    from ocibuild.sandbox import StepSpec, run_step

    bundle = tmp / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", bundle], check=True,
                   capture_output=True)
    config = json.loads((bundle / "config.json").read_text())
    out: list[bytes] = []
    env = dict(e.split("=", 1) for e in config["process"].get("env", ()))
    argv = list(config["process"]["args"])
    assert argv[0] == "sh"  # a bare name, found on the image's PATH (as root, here)
    result = run_step(StepSpec(rootfs=bundle / "rootfs", argv=argv,
                               env=env), on_stdout=out.append, on_stderr=out.append)
    assert result.ok, out
    return b"".join(out).decode()


def test_seed_dockerfile_builds_into_an_oci_layout_that_runs(builder: Builder) -> None:
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    out = builder.tmp / "out"
    proc, _ = builder.build("-t", "seed:1", "-o", f"type=oci,dest={out}", ctx)
    assert "[stage-a 2/2] RUN echo a > /a.txt" in proc.stderr
    assert _run_image_from_layout(out, "1", builder.tmp).split() == ["a", "b"]


# each stage notes the machine's uptime (the same clock in every sandbox, 10 ms steps)
# when its sleep begins and ends
_TIMED_STAGE = ("FROM busybox:latest AS {name}\n"
                "RUN cut -d' ' -f1 /proc/uptime > /start && sleep 2 && "
                "cut -d' ' -f1 /proc/uptime > /end && echo {name}\n")
PARALLEL_TIMED = (_TIMED_STAGE.format(name="one") + _TIMED_STAGE.format(name="two")
                  + "FROM scratch\n"
                  + "".join(f"COPY --from={n} /{e} /{n}.{e}\n" for n in ("one", "two")
                            for e in ("start", "end")))


def _overlap(out: Path) -> float:
    """Seconds both stages' sleeps were under way at once (negative: a gap between)."""
    t = {f.name: float(f.read_text()) for f in out.iterdir()}
    return min(t["one.end"], t["two.end"]) - max(t["one.start"], t["two.start"])


def test_independent_stages_run_in_parallel(builder: Builder) -> None:
    # what the stages' own clocks say, not the builds' wall times: a loaded machine
    # slows a build down, never makes two 2 s sleeps overlap by chance
    ctx = write_context(builder.tmp / "par", {"Dockerfile": PARALLEL_TIMED}, builder.user)
    builder.build("-o", f"type=local,dest={builder.tmp / 'par-out'}", ctx)
    builder.build("--no-cache", "--jobs", "1", "-o",
                  f"type=local,dest={builder.tmp / 'serial-out'}", ctx)
    assert _overlap(builder.tmp / "par-out") > 1.5
    assert _overlap(builder.tmp / "serial-out") < 0
    # the example in fixtures/ runs its stages at once too
    fixture = copy_fixture("parallel", builder.tmp / "fixture", builder.user)
    proc, _ = builder.build(fixture)
    starts = [proc.stderr.index(f"RUN sleep 2 && echo {n}") for n in ("one", "two")]
    first_sleep_done = min(m.start() for m in re.finditer(r"DONE (\d+\.\d)s", proc.stderr)
                           if float(m.group(1)) >= 2.0)
    assert max(starts) < first_sleep_done, proc.stderr


def test_cache_mount_persists_and_is_not_in_a_layer(builder: Builder) -> None:
    ctx = builder.tmp / "cm"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox:latest\n"
        "RUN --mount=type=cache,target=/c sh -c 'echo x >> /c/log; wc -l < /c/log > /n'\n")
    builder.build(ctx)
    out = builder.tmp / "out"
    builder.build("--no-cache", "-o", f"type=local,dest={out}", ctx)
    assert (out / "n").read_text().strip() == "2"
    assert not (out / "c" / "log").exists()


def test_cached_rebuild_materializes_nothing_and_tracks_copied_files(builder: Builder) -> None:
    ctx = builder.tmp / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox:latest AS a\nRUN echo a > /a\n"
        "FROM busybox:latest\nCOPY app.txt /app.txt\nRUN cat /app.txt > /copy\n"
        "COPY --from=a /a /a\n")
    (ctx / "app.txt").write_text("v1")
    (ctx / "unrelated.txt").write_text("x")
    for p in ctx.iterdir():
        os.chown(p, builder.user.uid, builder.user.gid)
    first = builder.api(ctx)
    assert first["cached"] < first["steps"]
    again = builder.api(ctx)
    assert again["cached"] == again["steps"] and again["materialized"] == 0
    builder.user.run(["sh", "-c", f"echo y >> {ctx / 'unrelated.txt'}"], check=True)
    proc, _ = builder.build(ctx)
    assert set(step_states(proc.stderr).values()) == {"CACHED"}
    builder.user.run(["sh", "-c", f"echo v2 > {ctx / 'app.txt'}"], check=True)
    proc, _ = builder.build(ctx)
    states = step_states(proc.stderr)
    assert states["[stage-1 2/4] COPY app.txt /app.txt"] == "DONE"
    assert states["[stage-1 3/4] RUN cat /app.txt > /copy"] == "DONE"
    assert states["[a 2/2] RUN echo a > /a"] == "CACHED"


def test_user_without_subordinate_ids_builds_too(nosub_user: User, nosub_tmp: Path,
                                                 busybox_store_template: Path) -> None:
    b = Builder(nosub_user, nosub_tmp, nosub_tmp / "store")
    b.root = b.new_store(busybox_store_template, "store")
    ctx = copy_fixture("seed", nosub_tmp / "seed", nosub_user)
    out = nosub_tmp / "out"
    b.build("-o", f"type=local,dest={out}", ctx)
    assert (out / "a.txt").read_text() == "a\n" and (out / "b.txt").read_text() == "b\n"
