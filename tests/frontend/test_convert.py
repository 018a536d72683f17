"""Dockerfile -> graph on the typed instructions: the cases where convert's own argument
parsing and `instructions` used to disagree now follow BuildKit (checked against its
frontend/dockerfile/instructions and dockerfile2llb)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from ocibuild.frontend.dockerfile.convert import BuildInputs, Conversion, convert
from ocibuild.frontend.dockerfile.errors import DockerfileError
from ocibuild.frontend.dockerfile.parser import parse
from ocibuild.graph import ContextSource, CopyOp, ExecOp, InlineSource
from ocibuild.oci.config import ImageConfig
from ocibuild.oci.platform import Platform

AMD64 = Platform("linux", "amd64")


class Images:
    """The images FROM can name: their config section, by reference."""

    def __init__(self, **configs: dict[str, Any]) -> None:
        self.configs = configs

    def __call__(self, ref: str, platform: Platform) -> tuple[str, ImageConfig]:
        digest = "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
        config = {"Env": ["PATH=/bin"], **self.configs.get(ref, {})}
        return digest, ImageConfig(architecture="amd64", os="linux", config=config)


def _convert(text: str, images: Images | None = None) -> Conversion:
    return convert(parse(text), BuildInputs(platform=AMD64), images or Images())


def _config(text: str) -> dict[str, Any]:
    return _convert("FROM base\n" + text).target.config


def test_expose_range_exposes_each_port_and_host_side_is_dropped() -> None:
    ports = _config("ARG P=8080:80\nEXPOSE 8000-8002/udp $P\n")["ExposedPorts"]
    assert ports == {"8000/udp": {}, "8001/udp": {}, "8002/udp": {}, "80/tcp": {}}


def test_expose_port_is_checked_after_expansion() -> None:
    with pytest.raises(DockerfileError) as info:
        _convert("FROM base\nARG P=http\nEXPOSE 80 $P\n")
    assert (info.value.line, info.value.column) == (3, 11)  # at the word as written
    assert "invalid port 'http'" in info.value.reason


def test_expose_zone_from_a_variable_is_refused_at_its_word() -> None:
    with pytest.raises(DockerfileError) as info:
        _convert("FROM base\nARG IP=[fe80::1%eth0]\nEXPOSE 80 ${IP}:80:80\n")
    assert (info.value.line, info.value.column) == (3, 11)
    assert info.value.reason == (
        "invalid IP address '[fe80::1%eth0]' in port '[fe80::1%eth0]:80:80': an IPv6 zone "
        "(%eth0) is not accepted")


def test_env_names_are_expanded_as_values_are() -> None:
    state = _convert("FROM base\nARG name=FOO\nENV ${name}=bar\nENV ${name}_OLD legacy\n"
                     ).target
    assert state.config["Env"] == ["PATH=/bin", "FOO=bar", "FOO_OLD=legacy"]
    assert [s.created_by for s in state.history][1:] == ["ENV FOO=bar", "ENV FOO_OLD=legacy"]


def test_env_expands_with_the_variables_from_before_the_instruction() -> None:
    # the reference's own example: def gets the abc of before this ENV line
    env = _config("ENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n")["Env"]
    assert env == ["PATH=/bin", "abc=bye", "def=hello", "ghi=bye"]


def test_env_name_expanding_to_nothing_is_an_error_at_its_line() -> None:
    with pytest.raises(DockerfileError) as info:
        _convert("FROM base\nENV ${UNSET}=x\n")
    assert (info.value.line, info.value.column) == (2, 1)
    assert info.value.reason == "ENV name '${UNSET}' expands to an empty string"


def test_arg_defaults_see_earlier_args_of_the_same_line_and_names_stay_as_written() -> None:
    args = _convert("ARG a=1 b=$a\nFROM base\nARG a\nARG b\nARG c=$b-2 ${c}=x\n").target.args
    assert args == {"a": "1", "b": "1", "c": "1-2", "${c}": "x"}


def test_arg_default_is_not_expanded_when_a_build_arg_gives_the_value() -> None:
    text = "ARG g=${NEED:?unset}\nFROM base\nARG g\nARG s=${NEED:?unset}\n"
    inputs = BuildInputs(platform=AMD64, build_args={"g": "1", "s": "2"})
    assert convert(parse(text), inputs, Images()).target.args == {"g": "1", "s": "2"}
    with pytest.raises(DockerfileError, match="NEED: unset"):
        _convert(text)


def test_copy_of_paths_and_a_heredoc_is_one_copy_the_heredoc_last() -> None:
    state = _convert("FROM base\nARG W=world\nCOPY a.txt <<EOF b* /dest/\nhello $W\nEOF\n"
                     ).target
    op = state.op
    assert isinstance(op, CopyOp) and isinstance(op.source, ContextSource)
    assert op.sources == ("a.txt", "b*") and op.dest == "/dest/" and not op.add
    assert op.contents == InlineSource(files=(("EOF", "hello world\n"),))
    assert state.history[-1].created_by == "COPY a.txt b* <<EOF /dest/ # buildkit"


def test_add_of_an_archive_and_a_heredoc_extracts_only_the_archive() -> None:
    op = _convert("FROM base\nADD a.tar <<EOF /x/\nbody\nEOF\n").target.op
    assert isinstance(op, CopyOp) and op.add and op.sources == ("a.tar",)
    assert op.contents == InlineSource(files=(("EOF", "body\n"),))


def test_copy_of_a_heredoc_with_paths_needs_a_directory_destination() -> None:
    with pytest.raises(DockerfileError, match="must be a directory"):
        _convert("FROM base\nCOPY <<EOF a.txt /dest\nx\nEOF\n")


def test_a_copy_without_heredocs_keeps_its_digest() -> None:
    # digests are cache keys: a COPY made before here-documents could join paths must
    # still find its cached layer
    plain = _convert("FROM base\nCOPY a.txt /d/\n").target.op
    assert isinstance(plain, CopyOp) and "contents" not in plain.spec()
    mixed = _convert("FROM base\nCOPY a.txt <<EOF /d/\nx\nEOF\n").target.op
    assert mixed.spec()["contents"] == {"op": InlineSource(files=(("EOF", "x\n"),)).digest}


def test_healthcheck_go_durations_and_unset_fields_left_out() -> None:
    check = _config("HEALTHCHECK --interval=.5s --timeout=0 --retries=0 CMD true\n")
    assert check["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 500_000_000}


def test_healthcheck_none_ignores_flags() -> None:
    assert _config("HEALTHCHECK --interval=5s NONE\n")["Healthcheck"] == {"Test": ["NONE"]}


def test_volume_paths_are_trimmed() -> None:
    assert _config('VOLUME [" /data ", "/logs"]\n')["Volumes"] == {"/data": {}, "/logs": {}}


def test_onbuild_heredoc_keeps_its_body_and_runs_in_the_child() -> None:
    parent = _config("ONBUILD RUN <<EOF\necho from the trigger\nEOF\n")
    assert parent["OnBuild"] == ["RUN <<EOF\necho from the trigger\nEOF"]
    child = _convert("FROM parent\n", Images(parent=parent)).target
    assert isinstance(child.op, ExecOp)
    assert child.op.args == ("/bin/sh", "-c", "echo from the trigger\n")
    assert "OnBuild" not in child.config


def test_onbuild_trigger_is_stored_as_written_without_a_history_entry() -> None:
    # BuildKit's parseOnBuild keeps the line's trailing blanks; dispatchOnbuild adds no
    # history entry
    state = _convert("FROM base\nONBUILD   RUN echo hi  \t\nENV A=1\n").target
    assert state.config["OnBuild"] == ["RUN echo hi  \t"]
    assert [step.created_by for step in state.history] == ["ENV A=1"]


def test_stage_built_from_a_stage_runs_its_onbuild_triggers_and_drops_them() -> None:
    conv = _convert("FROM base AS parent\nONBUILD RUN touch /t\nFROM parent\nENV B=1\n")
    child = conv.target
    assert "OnBuild" not in child.config
    assert isinstance(child.op, ExecOp) and child.op.args == ("/bin/sh", "-c", "touch /t")
    assert conv.stages[0].config["OnBuild"] == ["RUN touch /t"]


def test_bad_trigger_in_base_image_is_reported_at_from() -> None:
    images = Images(parent={"OnBuild": ["COPY --fom=x a b"]})
    with pytest.raises(DockerfileError) as info:
        _convert("# base with a trigger\nFROM parent\n", images)
    assert (info.value.line, info.value.column) == (2, 1)
    assert info.value.reason == (
        "ONBUILD trigger 'COPY --fom=x a b' of parent: unknown flag: --fom for COPY "
        "(did you mean --from?)")


def test_bare_cmd_runs_an_empty_shell_command() -> None:
    assert _config("CMD\n")["Cmd"] == ["/bin/sh", "-c", ""]
    assert _config('SHELL ["/bin/ash", "-c"]\nCMD echo   hi\n')["Cmd"] == [
        "/bin/ash", "-c", "echo   hi"]


def test_flag_errors_keep_file_line_and_column() -> None:
    with pytest.raises(DockerfileError) as info:
        _convert("FROM base\nRUN true\nCOPY --link --chmod=0644 --frm=a x /y\n")
    assert (info.value.filename, info.value.line, info.value.column) == ("Dockerfile", 3, 26)
    with pytest.raises(DockerfileError) as info:
        _convert("FROM base\nARG M=9z\nRUN --mount=type=cache,target=/c,mode=$M true\n")
    assert (info.value.line, info.value.column) == (3, 1)
    assert info.value.reason.startswith("--mount type=cache,target=/c,mode=$M:")
