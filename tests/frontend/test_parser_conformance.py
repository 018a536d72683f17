"""BuildKit's parser conformance data: every dump byte-identical, every negative case fails."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ocibuild.frontend.dockerfile.dump import dump_ast
from ocibuild.frontend.dockerfile.errors import DockerfileError
from ocibuild.frontend.dockerfile.parser import parse
from tests.support.paths import OCIBUILD, SHARED, needs_shared, without_shared

PARSER_DATA = SHARED / "conformance" / "buildkit" / "parser"


def _cases(folder: Path) -> list[object]:
    if not folder.is_dir():
        return without_shared(folder, folder)
    return sorted(p for p in folder.iterdir() if p.is_dir())


POSITIVE = _cases(PARSER_DATA / "testfiles")
NEGATIVE = _cases(PARSER_DATA / "testfiles-negative")


def _expected(case: Path) -> str:
    text = (case / "result").read_text(encoding="utf-8")
    return text if text.endswith("\n") else text + "\n"


@needs_shared(PARSER_DATA)
def test_all_conformance_cases_are_present() -> None:
    assert len(POSITIVE) == 33
    assert len(NEGATIVE) == 4


@pytest.mark.parametrize("case", POSITIVE, ids=lambda p: p.name)
def test_dump_is_byte_identical(case: Path) -> None:
    ast = parse((case / "Dockerfile").read_bytes(), "Dockerfile")
    assert dump_ast(ast) == _expected(case)


@pytest.mark.parametrize("case", NEGATIVE, ids=lambda p: p.name)
def test_negative_case_fails_with_dockerfile_error(case: Path) -> None:
    with pytest.raises(DockerfileError):
        parse((case / "Dockerfile").read_bytes(), "Dockerfile")


@needs_shared(PARSER_DATA)
@pytest.mark.parametrize("name", ["lk4d4-the-edge-case-generator", "json", "flags"])
def test_debug_ast_command_prints_the_same_dump(name: str) -> None:
    case = PARSER_DATA / "testfiles" / name
    res = subprocess.run(
        [OCIBUILD, "debug", "ast", "-f", str(case / "Dockerfile")],
        capture_output=True, text=True, check=False,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == _expected(case)


def test_escape_directive_changes_continuation_character() -> None:
    ast = parse("# escape=`\nFROM a\nRUN echo \\\nRUN x `\n  y\n")
    assert ast.escape == "`"
    assert [n.args for n in ast.nodes] == [("a",), ("echo \\",), ("x   y",)]
    assert ast.directive("escape") == "`"


def test_directives_only_count_at_the_very_top() -> None:
    ast = parse("# syntax=docker/dockerfile:1\n# check=skip=all\n#escape=`\nFROM a\n")
    assert [(d.name, d.value, d.line) for d in ast.directives] == [
        ("syntax", "docker/dockerfile:1", 1), ("check", "skip=all", 2), ("escape", "`", 3),
    ]
    late = parse("FROM a\n# escape=`\nRUN echo \\\n  b\n")
    assert late.escape == "\\" and late.directives == ()
    after_comment = parse("# hello\n# syntax=x\nFROM a\n")
    assert after_comment.directives == ()


def test_repeated_directive_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="only one escape parser directive"):
        parse("# escape=`\n# escape=\\\nFROM a\n")


def test_bad_escape_token_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="invalid escape token"):
        parse("# escape=x\nFROM a\n")


def test_nodes_carry_line_range_and_column() -> None:
    ast = parse("FROM a\n\n   RUN echo a \\\n  # comment\n\n    b\nCOPY x y\n")
    run = ast.nodes[1]
    assert (run.start_line, run.end_line, run.column) == (3, 6, 4)
    assert run.args == ("echo a     b",)
    assert ast.warnings  # the empty continuation line is reported
    assert (ast.nodes[2].start_line, ast.nodes[2].end_line) == (7, 7)


def test_onbuild_wraps_an_instruction() -> None:
    ast = parse('FROM a\nONBUILD COPY --from=x ["a", "b"]\n')
    node = ast.nodes[1]
    assert node.sub is not None
    assert (node.sub.name, node.sub.flags, node.sub.args, node.sub.json) == (
        "copy", ("--from=x",), ("a", "b"), True,
    )


def test_flags_are_split_off_before_the_arguments() -> None:
    ast = parse('FROM --platform=linux/arm64 a AS b\nCOPY --chown="1:2" --link -- --x y\n')
    assert ast.nodes[0].flags == ("--platform=linux/arm64",)
    assert ast.nodes[0].args == ("a", "AS", "b")
    assert ast.nodes[1].flags == ("--chown=1:2", "--link")
    assert ast.nodes[1].args == ("--x", "y")


def test_bom_and_crlf_are_tolerated() -> None:
    ast = parse("\ufeffFROM a\r\nRUN echo \\\r\n  b\r\n")
    assert [n.args for n in ast.nodes] == [("a",), ("echo   b",)]
