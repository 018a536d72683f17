"""The graph API and frontends end to end, as the unprivileged user: a fixture written
with `ocibuild.graph` (fixtures/*/build.py, through `--frontend python`) makes the same
layers and image config as its Dockerfile; a third-party frontend installed through the
`ocibuild.frontends` entry point group is chosen by `# syntax=` and builds; states that
do not depend on each other run at the same time."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.api.api_runner import api_result
from tests.build.conftest import Builder, copy_fixture, give_to, write_context
from tests.support.paths import OCIBUILD

EPOCH = "1700000000"
# fixture -> (build arguments, secrets as id -> content)
FIXTURES = {
    "seed": ({}, {}),
    "mounts": ({}, {"token": "s3cret-value\n"}),
    "args": ({"VARIANT": "large", "VERSION": "2.1"}, {}),
}

# builds a fixture's Dockerfile in one store and its build.py in another, fresh both
PARITY = """
import json, sys
import ocibuild

fixture, other_root, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
out = {}
for name, extra in (("dockerfile", {}),
                    ("python", {"dockerfile": fixture + "/build.py", "frontend": "python",
                                "root": other_root})):
    report = ocibuild.build(fixture, **options, **extra)
    out[name] = {"config": report.config.to_dict(), "steps": report.steps,
                 "cached": report.cached_steps, "manifest": report.manifest_digest}
print(json.dumps(out))
"""


def _manifest_layers(root: Path, digest: str) -> list[str]:
    blob = root / "content" / "blobs" / "sha256" / digest.removeprefix("sha256:")
    return [layer["digest"] for layer in json.loads(blob.read_text())["layers"]]


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_a_fixture_written_with_the_graph_api_makes_the_dockerfiles_image(
        module_builder: Builder, busybox_store_template: Path, fixture: str) -> None:
    builder = module_builder
    args, secrets = FIXTURES[fixture]
    ctx = copy_fixture(fixture, builder.tmp / fixture, builder.user)
    secret_args = []
    for sid, content in secrets.items():
        path = write_context(builder.tmp / "secrets", {sid: content}, builder.user) / sid
        secret_args.append(f"id={sid},src={path}")
    other = builder.new_store(busybox_store_template, f"other-store-{fixture}")
    options = {"build_args": {**args, "SOURCE_DATE_EPOCH": EPOCH}, "secrets": secret_args}
    got = api_result(builder, PARITY, str(ctx), str(other), json.dumps(options))
    df, py = got["dockerfile"], got["python"]
    # both really built (the base image, in both stores, is the one step found)
    assert py["cached"] == df["cached"] == 1 and py["steps"] == df["steps"] > 1
    assert _manifest_layers(other, py["manifest"]) == \
        _manifest_layers(builder.root, df["manifest"])
    df_config, py_config = df["config"], py["config"]
    df_history, py_history = df_config.pop("history"), py_config.pop("history")
    assert py_config == df_config
    # the same layers at the same times; the text differs ("RUN ..." / "ARG ..." entries)
    assert [(h["created"], h.get("empty_layer", False)) for h in py_history
            if not h.get("empty_layer")] == \
        [(h["created"], h.get("empty_layer", False)) for h in df_history
         if not h.get("empty_layer")]


FRONTEND_MODULE = '''
"""A frontend reading a tiny line language: `from IMAGE`, `run CMD`, `cmd CMD`."""
from ocibuild.graph import FrontendContext, State, image


def build(ctx: FrontendContext) -> State:
    state = None
    for line in ctx.text.splitlines():
        word, _, rest = line.partition(" ")
        if word == "from":
            state = image(rest)
        elif word == "run":
            state = state.run(rest)
        elif word == "cmd":
            state = state.cmd(rest.split())
    return state.label({"made-by": "tinyfront " + ctx.platform})
'''


def test_a_frontend_installed_by_entry_point_is_chosen_by_its_syntax(
        module_builder: Builder) -> None:
    builder = module_builder
    site = builder.tmp / "site"
    dist = site / "tinyfront-1.0.dist-info"
    dist.mkdir(parents=True)
    (site / "tinyfront.py").write_text(FRONTEND_MODULE)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyfront\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ocibuild.frontends]\ntiny = tinyfront:build\n")
    give_to(site, builder.user)
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "# syntax=tiny\nfrom busybox:latest\nrun echo tiny > /made\ncmd cat /made\n")},
        builder.user)
    env = {"PYTHONPATH": str(site)}
    proc, _ = builder.build("-t", "tiny:1", ctx, env=env)
    assert "RUN echo tiny > /made" in proc.stderr
    shown = builder.user.run([OCIBUILD, "--root", builder.root, "inspect", "--format",
                              "{{json .Config}}", "tiny:1"])
    config = json.loads(shown.stdout)
    assert config["Cmd"] == ["cat", "/made"] and config["Labels"]["made-by"].startswith(
        "tinyfront linux/")

    unknown = write_context(builder.tmp / "unknown", {"Dockerfile": "# syntax=nosuch\n"},
                            builder.user)
    proc, _ = builder.build(unknown, env=env, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "# syntax=nosuch: no such frontend is installed (installed frontends: " \
        "dockerfile, python, tiny;" in proc.stderr


PARALLEL = """
import json, time
import ocibuild
from ocibuild.graph import image

base = image("busybox:latest")
one = base.run("sleep 2 && echo one > /one")
two = base.run("sleep 2 && echo two > /two")
both = base.copy(one, "/one", "/one").copy(two, "/two", "/two")
ocibuild.solve(base.run("true"))  # the sandbox and the base's layers are ready first
start = time.monotonic()
report = ocibuild.solve(both, jobs=2)
print(json.dumps({"seconds": time.monotonic() - start, "steps": report.steps}))
"""


def test_independent_states_run_at_the_same_time(module_builder: Builder) -> None:
    builder = module_builder
    got = api_result(builder, PARALLEL)
    assert got["steps"] >= 4
    assert got["seconds"] < 3, got


def test_a_python_definition_that_fails_says_where(module_builder: Builder) -> None:
    builder = module_builder
    ctx = write_context(builder.tmp / "bad", {"build.py": (
        "from ocibuild.graph import image\n\n"
        "def build(ctx):\n"
        "    return image('busybox').run(42 / 0)\n")}, builder.user)
    proc, _ = builder.build("--frontend", "python", "-f", ctx / "build.py", ctx, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"frontend python: {ctx / 'build.py'}:4: ZeroDivisionError: division by zero" \
        in proc.stderr
    proc, _ = builder.build("--frontend", "nosuch", "-f", ctx / "build.py", ctx, check=False)
    assert "--frontend nosuch: no such frontend is installed" in proc.stderr
    assert os.path.exists(ctx)


LAYOUT_AND_CONTEXTS = """
import json, pathlib
import ocibuild
from ocibuild.graph import context, image, oci_layout

for name in ("main", "extra"):
    pathlib.Path(name, "sub").mkdir(parents=True, exist_ok=True)
    for path in (name + ".txt", "skipped.log", "sub/kept.txt", "sub/dropped.log"):
        pathlib.Path(name, path).write_text(path + "\\n")
ocibuild.solve(image("busybox:latest").label(stage="base"),
               outputs=["type=oci,dest=base-layout,tar=false"])
state = (oci_layout("base-layout")
         .copy(context("main", include=["*.txt", "sub"], exclude=["sub/*.log"]), ".", "/main/")
         .copy(context("extra"), "extra.txt", "/extra/"))
report = ocibuild.solve(state, outputs=["type=local,dest=tree"])
print(json.dumps({"labels": report.config.config.get("Labels"),
                  "main": sorted(str(p.relative_to("tree/main"))
                                 for p in pathlib.Path("tree/main").rglob("*")),
                  "extra": sorted(p.name for p in pathlib.Path("tree/extra").iterdir())}))
"""


def test_a_state_reads_an_oci_layout_and_several_contexts(module_builder: Builder) -> None:
    builder = module_builder
    work = builder.user.make_tempdir()
    try:
        got = api_result(builder, LAYOUT_AND_CONTEXTS, cwd=work)
    finally:
        from tests.support.users import remove_tree

        remove_tree(work)
    assert got == {"labels": {"stage": "base"}, "main": ["main.txt", "sub", "sub/kept.txt"],
                   "extra": ["extra.txt"]}
