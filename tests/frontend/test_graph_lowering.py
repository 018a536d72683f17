"""The graph API without building: a state becomes the ops its Dockerfile would make
(the fixtures' build.py against their Dockerfiles, op by op), states are immutable
values, and the frontend registry picks frontends by name and `# syntax=` as
documented, with one error listing the installed ones for an unknown name."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from ocibuild.errors import UsageError
from ocibuild.frontend import registry
from ocibuild.frontend.dockerfile import parser
from ocibuild.frontend.dockerfile.convert import BuildInputs, Conversion, convert
from ocibuild.frontend.lower import GraphDefinition
from ocibuild.graph import (
    FrontendContext,
    bind,
    cache,
    context,
    git,
    http,
    image,
    ssh,
    walk,
)
from ocibuild.oci.config import ImageConfig
from ocibuild.oci.platform import Platform
from tests.support.paths import FIXTURES

BASE_CONFIG = ImageConfig(architecture="amd64", os="linux",
                          config={"Env": ["PATH=/bin"], "Cmd": ["sh"]})


def _resolve(ref: str, platform: Platform) -> tuple[str, ImageConfig]:
    return "sha256:" + "1" * 64, BASE_CONFIG


def _same_build(df: Conversion, graph: Conversion) -> None:
    assert [op.digest for op in walk(graph.target.op)] == \
        [op.digest for op in walk(df.target.op)]
    assert graph.target.config == df.target.config
    assert graph.target.platform == df.target.platform
    layers = [h for h in graph.target.history if h.op is not None]  # ARGs make none
    assert [h.op for h in layers] == [h.op for h in df.target.history if h.op is not None]


@pytest.mark.parametrize("fixture,args", [
    ("seed", {}), ("mounts", {}), ("args", {"VARIANT": "large", "VERSION": "2.1"}),
    ("args", {})])
def test_a_fixtures_build_py_makes_the_ops_of_its_dockerfile(
        fixture: str, args: dict[str, str]) -> None:
    directory = FIXTURES / fixture
    inputs = BuildInputs(build_args=dict(args), platform=Platform.parse("linux/amd64"))
    df = convert(parser.parse((directory / "Dockerfile").read_text()), inputs, _resolve)
    main = context(directory)
    ctx = FrontendContext(main, directory / "build.py", "", args, None, "linux/amd64")
    state = runpy.run_path(str(directory / "build.py"))["build"](ctx)
    graph = GraphDefinition.of(state, main).convert(inputs, _resolve)
    _same_build(df, graph)


def test_states_are_immutable_values() -> None:
    base = image("busybox")
    one = base.run("echo one")
    assert base.steps == () and len(one.steps) == 1
    assert base.run("echo one") == one and hash(base.run("echo one")) == hash(one)
    with pytest.raises(AttributeError):
        one.steps = ()  # type: ignore[misc]
    with pytest.raises(UsageError, match="network 'bridge'"):
        base.run("true", network="bridge")


def test_include_and_exclude_become_the_main_contexts_ignore_patterns(tmp_path: Path) -> None:
    main = context(tmp_path, include=["src"], exclude=["src/*.pyc"])
    state = image("busybox").copy(main, "src", "/src")
    assert GraphDefinition.of(state).ignore_patterns == ["*", "!src", "src/*.pyc"]
    other = context(tmp_path / "other", exclude=["x"])
    with pytest.raises(UsageError, match="only to the build's main context"):
        GraphDefinition.of(state.copy(other, "a", "/a"))


@pytest.mark.parametrize("text,name", [
    ("FROM busybox\n", "dockerfile"),
    ("# syntax=docker/dockerfile:1.7\nFROM busybox\n", "dockerfile"),
    ("# syntax=docker.io/docker/dockerfile:1\nFROM busybox\n", "dockerfile"),
    ("# syntax=example.com/custom/frontend:2\nFROM busybox\n", "dockerfile"),
    ("# escape=`\n# syntax=python\nimport x\n", "python"),
    ("#!/usr/bin/env python\n# syntax=python\n", "dockerfile"),  # not a directive line
])
def test_the_syntax_directive_picks_the_frontend(text: str, name: str) -> None:
    assert registry.choose(None, text, {}).name == name


def test_an_unknown_frontend_is_an_error_listing_the_installed_ones() -> None:
    for given, text in (("nosuch", "FROM x\n"), (None, "# syntax=nosuch\nFROM x\n")):
        with pytest.raises(UsageError, match=r"no such frontend is installed \(installed "
                           r"frontends: dockerfile, python"):
            registry.choose(given, text, {})
    assert registry.choose("python", "FROM x\n", {}).name == "python"
    assert registry.choose(None, "# syntax=x/y\n", {"BUILDKIT_SYNTAX": "python"}).name \
        == "python"


def test_solve_refuses_the_options_of_a_definition_file() -> None:
    import ocibuild

    with pytest.raises(UsageError, match="solve: dockerfile, target only apply"):
        ocibuild.solve(image("busybox"), dockerfile="Dockerfile", target="test")


def test_downloads_and_git_trees_are_the_ops_of_add() -> None:
    dockerfile = ("FROM busybox\n"
                  "ADD --checksum=sha256:" + "ab" * 32 + " https://example.com/f.tgz /f.tgz\n"
                  "ADD https://example.com/repo.git#v1 /src\n"
                  "ADD --chmod=644 --link https://example.com/g /g\n")
    inputs = BuildInputs(platform=Platform.parse("linux/amd64"))
    df = convert(parser.parse(dockerfile), inputs, _resolve)
    state = (image("busybox")
             .copy(http("https://example.com/f.tgz", checksum="sha256:" + "ab" * 32), (),
                   "/f.tgz")
             .copy(git("https://example.com/repo.git", "v1"), ".", "/src")
             .copy(http("https://example.com/g"), (), "/g", chmod="644", link=True))
    _same_build(df, GraphDefinition.of(state).convert(inputs, _resolve))


def test_bind_and_ssh_mounts_and_network_are_those_of_run() -> None:
    dockerfile = ("FROM busybox AS b\nRUN mkdir /out\n"
                  "FROM busybox\n"
                  "RUN --mount=type=bind,from=b,source=/out,target=/in "
                  "--mount=type=ssh --mount=type=cache,target=/c,from=b,sharing=locked "
                  "--network=none ls /in\n"
                  'RUN --mount=type=bind,target=/ctx,rw ["ls", "/ctx"]\n')
    inputs = BuildInputs(platform=Platform.parse("linux/amd64"))
    df = convert(parser.parse(dockerfile), inputs, _resolve)
    b = image("busybox").run("mkdir /out")
    state = (image("busybox")
             .run("ls /in", network="none",
                  mounts=[bind(b, "/in", path="/out"), ssh(),
                          cache("/c", source=b, sharing="locked")])
             .run(["ls", "/ctx"], mounts=[bind(context("."), "/ctx", readonly=False)]))
    _same_build(df, GraphDefinition.of(state).convert(inputs, _resolve))


def test_a_base_that_cannot_be_resolved_names_the_image() -> None:
    def missing(ref: str, platform: Platform) -> tuple[str, ImageConfig]:
        raise UsageError(f"{ref}: not in the store")

    with pytest.raises(UsageError, match=r"^image\('nosuch:1'\): nosuch:1: not in the store$"):
        GraphDefinition.of(image("nosuch:1").run("true")).convert(BuildInputs(), missing)
