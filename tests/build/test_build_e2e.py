"""Builds run as the unprivileged user ocib-sub, end to end."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.build.conftest import Builder, copy_fixture


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
    # busybox keeps its applets in /bin (the sandbox's exec of a bare name as root fails)
    argv[0] = argv[0] if argv[0].startswith("/") else f"/bin/{argv[0]}"
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


def test_independent_stages_run_in_parallel(builder: Builder) -> None:
    ctx = copy_fixture("parallel", builder.tmp / "par", builder.user)
    _, parallel = builder.build(ctx)
    _, serial = builder.build("--no-cache", "--jobs", "1", ctx)
    assert parallel < 3.0, parallel
    assert serial > 4.0, serial


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
