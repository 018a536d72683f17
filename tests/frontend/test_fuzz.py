"""Parsing arbitrary text raises DockerfileError or nothing (bench/frontend_fuzz.py runs longer)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from ocibuild.frontend.dockerfile.dump import dump_ast
from ocibuild.frontend.dockerfile.errors import DockerfileError
from ocibuild.frontend.dockerfile.instructions import parse_dockerfile
from ocibuild.frontend.dockerfile.parser import parse
from tests.support.dockerfile_gen import arbitrary_text, dockerfile_text

FUZZ = settings(max_examples=300, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def _only_dockerfile_errors(text: str) -> None:
    try:
        dump_ast(parse(text))
    except DockerfileError as exc:
        assert exc.render()
    try:
        parse_dockerfile(text)
    except DockerfileError as exc:
        assert exc.line >= 0 and exc.render()


@FUZZ
@given(arbitrary_text)
def test_arbitrary_text(text: str) -> None:
    _only_dockerfile_errors(text)


@FUZZ
@given(dockerfile_text())
def test_plausible_dockerfiles(text: str) -> None:
    _only_dockerfile_errors(text)


def test_bytes_that_are_not_utf8() -> None:
    ast = parse(b"FROM a\nRUN echo \xff\xfe\n")
    assert dump_ast(ast) == '(from "a")\n(run "echo \\xff\\xfe")\n'


def test_deeply_nested_json() -> None:
    _only_dockerfile_errors("FROM a\nCMD " + "[" * 5000 + "]" * 5000 + "\n")
