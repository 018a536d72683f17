"""Our parser against BuildKit's own (Go, through the PyPI `dockerfile` package).

Compared: instruction, ONBUILD's nested instruction, JSON or not, flags,
arguments, heredoc names/descriptors/bodies and line ranges.

Normalisations, for differences of the oracle and not of the parser: the
package drops the `=`/`""` separator nodes BuildKit puts after each ENV and
LABEL pair (the dump format keeps them, and so do we), and passes strings
through C so it cuts them at a NUL character; it reports an empty
instruction's name as None; it looks for ONBUILD's heredocs on the trigger
node, where BuildKit never puts them (ours are checked in test_heredocs).

One version difference: the package wraps BuildKit v0.12.5, which read a JSON
array with a streaming decoder and ignored text after it (`CMD ["a"] b` was
exec form); current BuildKit, whose conformance data we follow, requires the
whole argument to be the array, else it is shell form. `_same` accepts exactly
that difference.
"""

from __future__ import annotations

import json
from pathlib import Path

import dockerfile
import pytest
from hypothesis import HealthCheck, given, settings

from ocibuild.frontend.dockerfile.errors import DockerfileError
from ocibuild.frontend.dockerfile.parser import Node, parse
from tests.support.dockerfile_gen import dockerfile_text
from tests.support.paths import FIXTURES, SHARED, needs_shared

Row = tuple[object, ...]


def _cut(text: str) -> str:
    return text.split("\x00", 1)[0]


def _ours(text: str) -> list[Row] | str:
    try:
        ast = parse(text)
    except DockerfileError:
        return "error"
    rows = []
    for node in ast.nodes:
        inner: Node = node.sub if node.sub is not None else node
        args = inner.args
        if inner.name in ("env", "label"):
            args = tuple(a for i, a in enumerate(args) if i % 3 != 2)
        rows.append((
            node.command.upper(),
            inner.command.upper() if node.sub is not None else None,
            inner.json,
            node.flags,  # the package reports ONBUILD's own flags, not its trigger's
            tuple(_cut(a) for a in args),
            node.start_line,
            node.end_line,
            # the package looks for ONBUILD's heredocs on the trigger, where BuildKit has none
            () if node.sub is not None else tuple(
                (h.name, h.file_descriptor, h.content) for h in node.heredocs),
        ))
    return rows


def _theirs(text: str) -> list[Row] | str:
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError:
        return "error"
    return [
        (
            (c.cmd or "").upper(),  # None for an empty instruction
            c.sub_cmd.upper() if c.sub_cmd else None,
            c.json,
            tuple(c.flags),
            tuple(c.value),
            c.start_line,
            c.end_line,
            tuple((h.name, h.file_descriptor, h.content) for h in c.heredocs),
        )
        for c in commands
    ]


def _trailing_after_json(text: str) -> bool:
    stripped = text.lstrip()
    try:
        _, end = json.JSONDecoder().raw_decode(stripped)
    except ValueError:
        return False
    return bool(stripped[end:].strip())


def _json_then_text(args: tuple[str, ...]) -> bool:
    return any(_trailing_after_json(" ".join(args[k:])) for k in range(len(args)))


def _same(ours: list[Row] | str, theirs: list[Row] | str) -> bool:
    if theirs == "error" and not isinstance(ours, str):
        # v0.12.5 rejected `RUN [1] x` (a non-string array then text); now it is shell form
        return any(not row[2] and _json_then_text(row[4]) for row in ours)  # type: ignore[arg-type]
    if isinstance(ours, str) or isinstance(theirs, str) or len(ours) != len(theirs):
        return ours == theirs
    for mine, other in zip(ours, theirs, strict=True):
        if mine == other:
            continue
        if other[2] and not mine[2] and mine[:2] == other[:2] and mine[3] == other[3] \
                and mine[5:] == other[5:] and _json_then_text(mine[4]):  # type: ignore[arg-type]
            continue
        return False
    return True


def _dockerfiles() -> list[Path]:
    found = sorted((SHARED / "conformance").rglob("Dockerfile"))
    if FIXTURES.is_dir():
        found += sorted(p for p in FIXTURES.rglob("*Dockerfile*") if p.is_file()
                        and not p.name.endswith(".dockerignore"))
    return found


FILES = _dockerfiles()


@needs_shared(SHARED / "conformance")
def test_corpus_is_found() -> None:
    assert len(FILES) >= 37


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(p.parents[2])))
def test_same_as_buildkit_on_corpus(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert _ours(text) == _theirs(text)  # no version difference in the corpus


@settings(max_examples=400, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(dockerfile_text())
def test_same_as_buildkit_on_generated(text: str) -> None:
    ours, theirs = _ours(text), _theirs(text)
    assert _same(ours, theirs), (ours, theirs)
