"""Functions stay small enough to read: none in the package over 100 lines, and
`builder.build` reads as its named stages (under 60 lines)."""

from __future__ import annotations

import ast
from pathlib import Path

import ocibuild

PACKAGE = Path(ocibuild.__file__).parent


def _function_sizes() -> dict[str, int]:
    sizes: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"
                sizes[where] = (node.end_lineno or node.lineno) - node.lineno + 1
    return sizes


def test_no_function_is_over_100_lines() -> None:
    too_long = {where: n for where, n in _function_sizes().items() if n > 100}
    assert not too_long


def test_build_reads_as_its_stages() -> None:
    [size] = [n for where, n in _function_sizes().items()
              if where.startswith("ocibuild/builder.py:") and where.endswith(" build")]
    assert size < 60
