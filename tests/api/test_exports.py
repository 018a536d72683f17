"""What `import ocibuild` offers: exactly the names of `__all__`, each importable,
documented and listed by help() and dir(); nothing loaded before it is used."""

from __future__ import annotations

import dataclasses
import inspect
import pydoc
import re
import subprocess
import types
from pathlib import Path

import pytest

import ocibuild
import ocibuild.graph
from tests.support.paths import REPO, VENV_BIN

DOC = (REPO / "docs" / "python-api.md").read_text()

EXPECTED = [
    "BuildOptions",
    "BuildReport",
    "DiskFullError",
    "DockerfileError",
    "ImageNotFoundError",
    "ImageSummary",
    "OcibuildError",
    "ProgressCallback",
    "ProgressEvent",
    "PushResult",
    "RegistryError",
    "RegistryOptions",
    "SandboxError",
    "StepFailedError",
    "StoreError",
    "UsageError",
    "__version__",
    "build",
    "images",
    "import_rootfs",
    "pull",
    "push",
    "solve",
    "tag",
]
ERRORS = ["DiskFullError", "DockerfileError", "ImageNotFoundError", "RegistryError",
          "SandboxError", "StepFailedError", "StoreError", "UsageError"]


def test_all_is_pinned_and_sorted() -> None:
    assert ocibuild.__all__ == EXPECTED
    assert ocibuild.__all__ == sorted(ocibuild.__all__)


@pytest.mark.parametrize("name", EXPECTED)
def test_every_exported_name_is_importable_and_documented(name: str) -> None:
    value = getattr(ocibuild, name)
    exec(f"from ocibuild import {name}", {})  # noqa: S102  (the import statement works)
    assert f"`{name}" in DOC, f"{name} is not in docs/python-api.md"
    if inspect.isclass(value) or inspect.isfunction(value):
        assert inspect.getdoc(value), f"{name} has no docstring"


def test_nothing_else_is_public() -> None:
    for name in ocibuild.__all__:
        getattr(ocibuild, name)  # every lazy name loaded: vars() holds them all now
    public = {k for k, v in vars(ocibuild).items()
              if not k.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public == {n for n in EXPECTED if not n.startswith("_")}


def test_dir_lists_exactly_the_exported_names() -> None:
    shown = [n for n in dir(ocibuild) if not n.startswith("__")]
    assert shown == [n for n in EXPECTED if not n.startswith("__")]
    assert "__version__" in dir(ocibuild)


def test_help_lists_every_exported_name() -> None:
    text = pydoc.render_doc(ocibuild, renderer=pydoc.plaintext)
    for name in EXPECTED:
        if name.startswith("Progress"):  # aliases: shown as DATA, by their own name
            assert re.search(rf"^    {name} = ", text, re.M), name
        elif inspect.isclass(getattr(ocibuild, name)):
            assert re.search(rf"^    class {name}\(", text, re.M), name
        elif name != "__version__":
            assert re.search(rf"^    {name}\(", text, re.M), name


def test_no_internal_module_shares_a_public_name() -> None:
    """`import ocibuild.NAME` of a module would rebind a public function of that name."""
    package = Path(ocibuild.__file__).parent
    modules = {p.stem for p in package.glob("*.py")} | {
        p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert not modules & set(ocibuild.__all__)


@pytest.mark.parametrize("name", ERRORS)
def test_every_error_is_an_ocibuild_error(name: str) -> None:
    assert issubclass(getattr(ocibuild, name), ocibuild.OcibuildError)


def test_build_options_fields_are_documented_and_keywords_of_build() -> None:
    doc = inspect.getdoc(ocibuild.BuildOptions) or ""
    for f in dataclasses.fields(ocibuild.BuildOptions):
        assert re.search(rf"\b{f.name}\b", doc), f"BuildOptions.{f.name} is not described"
    with pytest.raises(TypeError, match="no_such_option"):
        ocibuild.build(".", no_such_option=True)


def test_build_options_refuse_what_a_type_checker_would() -> None:
    with pytest.raises(ocibuild.UsageError, match="tags: expected a list of strings"):
        ocibuild.BuildOptions(tags="app:1")  # type: ignore[arg-type]
    with pytest.raises(ocibuild.UsageError, match="jobs: expected a number above 0"):
        ocibuild.BuildOptions(jobs=0)
    with pytest.raises(ocibuild.UsageError, match="source_date_epoch: expected whole"):
        ocibuild.build(".", source_date_epoch="yesterday")  # type: ignore[typeddict-item]


def test_import_loads_nothing_more_than_the_errors() -> None:
    """`import ocibuild` (every command and the sandbox helpers pay for it) loads the
    package and its errors; each public name loads its module on first use."""
    code = ("import sys; before = set(sys.modules); import ocibuild; "
            "print(' '.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([VENV_BIN / "python", "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert {m for m in out if m.startswith("ocibuild")} == {"ocibuild", "ocibuild.errors"}
    assert set(out) <= {"ocibuild", "ocibuild.errors", "errno", "__future__"}, out


GRAPH = [
    "Command",
    "Context",
    "FrontendContext",
    "GitRepository",
    "HttpFile",
    "RunMount",
    "Source",
    "State",
    "bind",
    "cache",
    "context",
    "git",
    "http",
    "image",
    "oci_layout",
    "scratch",
    "secret",
    "ssh",
    "tmpfs",
]
GRAPH_ALIASES = {"Command", "Source"}  # type aliases: no docstring of their own


def test_the_graph_api_is_pinned_and_each_name_documented() -> None:
    """`ocibuild.graph` exports the graph API; the engine's ops it also holds are not
    public (not in `__all__`)."""
    assert ocibuild.graph.__all__ == GRAPH
    for name in GRAPH:
        value = getattr(ocibuild.graph, name)
        assert f"`{name}" in DOC, f"ocibuild.graph.{name} is not in docs/python-api.md"
        if name not in GRAPH_ALIASES:
            assert inspect.getdoc(value), f"ocibuild.graph.{name} has no docstring"
    assert "ExecOp" not in ocibuild.graph.__all__


def test_every_public_method_of_a_state_is_documented() -> None:
    methods = [n for n, v in vars(ocibuild.graph.State).items()
               if inspect.isfunction(v) and not n.startswith("_")]
    assert sorted(methods) == ["cmd", "copy", "entrypoint", "env", "label", "platform",
                               "run", "user", "workdir"]
    for name in methods:
        assert f".{name}(" in DOC, f"State.{name} is not in docs/python-api.md"
