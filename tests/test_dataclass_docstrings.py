"""Every dataclass of the package has a docstring: for a class without one, `dataclasses`
makes one from `inspect.signature` as the class is made (~50 µs a class, ~20 of them
before a build's first step, on the critical path of every cold build)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ocibuild"


def test_every_dataclass_has_a_docstring() -> None:
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) \
                    and any("dataclass" in ast.unparse(d) for d in node.decorator_list) \
                    and ast.get_docstring(node) is None:
                missing.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    assert missing == []
