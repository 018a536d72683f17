"""Heredocs in RUN, COPY, ADD and ONBUILD: every form BuildKit accepts."""

from __future__ import annotations

import pytest

from ocibuild.frontend.dockerfile.errors import DockerfileError
from ocibuild.frontend.dockerfile.instructions import (
    CopyInstruction,
    OnbuildInstruction,
    RunInstruction,
    parse_dockerfile,
)
from ocibuild.frontend.dockerfile.parser import Heredoc, parse, parse_heredoc


def _run(text: str) -> RunInstruction:
    inst = parse_dockerfile("FROM a\n" + text).stages[0].instructions[0]
    assert isinstance(inst, RunInstruction)
    return inst


def test_plain_heredoc_keeps_body_and_line_range() -> None:
    run = _run("RUN <<EOF\necho $HOME\n  indented\nEOF\nUSER x\n")
    assert run.command == ("<<EOF",) and run.shell_form
    assert run.heredocs == (Heredoc("EOF", 0, True, False, "echo $HOME\n  indented\n"),)
    assert (run.location.start_line, run.location.end_line) == (2, 5)


def test_dash_form_marks_tabs_for_stripping() -> None:
    df = parse_dockerfile("FROM a\nCOPY <<-EOT /f\n\t\tone\n\ttwo\n\tEOT\n")
    copy = df.stages[0].instructions[0]
    assert isinstance(copy, CopyInstruction)
    assert copy.source_contents[0].data == "one\ntwo\n"
    run = _run("RUN <<-EOF\n\tx\n\t\tEOF\n")
    assert run.heredocs[0].chomp and run.heredocs[0].content == "\tx\n"


@pytest.mark.parametrize("opener", ['<<"EOF"', "<<'EOF'", '<<E"O"F'])
def test_quoted_delimiter_turns_expansion_off(opener: str) -> None:
    run = _run(f"RUN {opener}\necho $HOME\nEOF\n")
    assert run.heredocs[0].name == "EOF"
    assert run.heredocs[0].expand is False
    assert run.heredocs[0].content == "echo $HOME\n"


def test_several_heredocs_on_one_line_are_read_in_order() -> None:
    run = _run("RUN <<A cat - /dev/fd/3 3<<B\nfirst\nA\nsecond\nB\nUSER u\n")
    assert [(h.name, h.file_descriptor, h.content) for h in run.heredocs] == [
        ("A", 0, "first\n"), ("B", 3, "second\n"),
    ]
    assert run.location.end_line == 6


def test_heredoc_with_program_after_it() -> None:
    run = _run("RUN python3 <<EOF > /out\nprint(1)\nEOF\n")
    assert run.command == ("python3 <<EOF > /out",)
    assert run.heredocs[0].content == "print(1)\n"


def test_copy_mixes_heredoc_and_file_sources() -> None:
    df = parse_dockerfile("FROM a\nCOPY --chmod=755 <<one.sh file.txt <<two.sh /dst/\n"
                          "echo 1\none.sh\necho 2\ntwo.sh\n")
    copy = df.stages[0].instructions[0]
    assert isinstance(copy, CopyInstruction)
    assert copy.sources == ("file.txt",)
    assert [(c.path, c.data) for c in copy.source_contents] == [
        ("one.sh", "echo 1\n"), ("two.sh", "echo 2\n"),
    ]
    assert copy.chmod == "755" and copy.dest == "/dst/"


def test_add_heredoc() -> None:
    df = parse_dockerfile("FROM a\nADD <<EOF /x\nhello\nEOF\n")
    assert df.stages[0].instructions[0].source_contents[0].data == "hello\n"  # type: ignore[attr-defined]


def test_onbuild_heredoc() -> None:
    df = parse_dockerfile("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n")
    onbuild = df.stages[0].instructions[0]
    assert isinstance(onbuild, OnbuildInstruction)
    assert isinstance(onbuild.trigger, RunInstruction)
    assert onbuild.trigger.heredocs[0].content == "echo hi\n"
    assert onbuild.expression == "RUN <<EOF\necho hi\nEOF"


def test_json_form_and_other_instructions_take_no_heredoc() -> None:
    ast = parse('FROM a\nRUN ["cat", "<<EOF"]\nEOF\nCMD <<EOF\n')
    assert [n.name for n in ast.nodes] == ["from", "run", "eof", "cmd"]
    assert all(not n.heredocs for n in ast.nodes)


def test_heredoc_with_space_after_operator() -> None:
    run = _run("RUN << EOF\nx\nEOF\n")
    assert run.heredocs[0].name == "EOF"


def test_unterminated_heredoc_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="unterminated heredoc") as info:
        parse("FROM a\nRUN <<EOF\necho\n")
    assert info.value.line == 2


def test_heredoc_destination_is_rejected() -> None:
    with pytest.raises(DockerfileError, match="cannot accept a heredoc as a destination"):
        parse_dockerfile("FROM a\nCOPY x <<EOF\nEOF\n")


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("<<EOF", Heredoc("EOF")),
        ("<<-EOF", Heredoc("EOF", chomp=True)),
        ("<<'EOF'", Heredoc("EOF", expand=False)),
        ("10<<EOF", Heredoc("EOF", file_descriptor=10)),
        ("<<", None),
        ("a<<EOF", None),
        ("<<EOF<<", None),
    ],
)
def test_parse_heredoc_word(word: str, expected: Heredoc | None) -> None:
    assert parse_heredoc(word) == expected
