"""`mypy --strict` passes on the public modules (`ocibuild`, the graph API
`ocibuild.graph`, the frontend registry, and the modules behind their functions) and on
code using them: the examples of docs/python-api.md and the fixtures' build.py files.
Modules they import are analysed for their types without their own errors being
reported (they are internal)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import fields
from pathlib import Path

from tests.api.test_docs_examples import python_blocks
from tests.support.paths import REPO, VENV_BIN

PUBLIC = ["ocibuild/__init__.py", "ocibuild/api.py", "ocibuild/build_options.py",
          "ocibuild/graph/__init__.py", "ocibuild/graph/state.py",
          "ocibuild/frontend/registry.py"]
CACHE = Path("/tmp/ocib-mypy-cache")  # kept between runs: a later run takes ~2 s


def _mypy(*paths: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VENV_BIN / "mypy", "--strict", "--follow-imports=silent", "--cache-dir", CACHE,
         "--no-error-summary", "--python-version", "3.11", *paths],
        cwd=REPO, capture_output=True, text=True, timeout=240)


def test_public_module_passes_mypy_strict_and_so_do_the_documented_examples(
        tmp_path: Path) -> None:
    examples = []
    for i, (where, code) in enumerate(python_blocks()):
        path = tmp_path / f"example_{i}.py"
        path.write_text(f"# {where}\n{code}")
        examples.append(path)
    for definition in sorted((REPO / "fixtures").glob("*/build.py")):
        path = tmp_path / f"fixture_{definition.parent.name}.py"
        path.write_text(definition.read_text())
        examples.append(path)
    proc = _mypy(*PUBLIC, *examples)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_sees_a_wrong_use_of_the_api(tmp_path: Path) -> None:
    """The check has teeth: the API's types reach a caller through the lazy exports."""
    wrong = tmp_path / "wrong.py"
    wrong.write_text("import ocibuild\n"
                     "report = ocibuild.build('.', tags=['a'])\n"
                     "digest: int = report.manifest_digest\n"
                     "ocibuild.BuildOptions(jobs='many')\n"
                     "ocibuild.push(42)\n"
                     "ocibuild.build('.', tgas=['a'])\n"
                     "ocibuild.build('.', ocibuild.BuildOptions(), jobs='many')\n")
    out = _mypy(wrong).stdout
    found = {(int(m[1]), m[2]) for m in re.finditer(r"wrong\.py:(\d+): error: .*\[([a-z-]+)\]$",
                                                    out, re.M)}
    # a str is no int; jobs is a number; push takes a name; build's keywords are checked
    assert found == {(3, "assignment"), (4, "arg-type"), (5, "arg-type"), (6, "call-arg"),
                     (7, "arg-type")}, out

def test_the_keywords_of_build_are_the_fields_of_build_options() -> None:
    from ocibuild.build_options import BuildFields, BuildOptions

    assert list(BuildFields.__annotations__) == [f.name for f in fields(BuildOptions)]
    assert {k: v.__forward_arg__ for k, v in BuildFields.__annotations__.items()} == \
        {f.name: f.type for f in fields(BuildOptions)}
