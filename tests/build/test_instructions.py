"""One row per Dockerfile instruction: the image config or filesystem it must give."""

from __future__ import annotations

import pytest

from tests.build import imagefs
from tests.build.conftest import Builder
from tests.build.table import Row, build_rows, config, env, text

FROM = "FROM busybox:latest\n"


def _env(img: imagefs.Image) -> None:
    e = env(img)
    assert e["A"] == "1" and e["B"] == "two words" and e["C"] == "1-x"
    assert text(img, "seen") == "1 two words 1-x\n"


def _label(img: imagefs.Image) -> None:
    assert config(img)["Labels"] == {"a": "b", "c d": "e", "from-arg": "v1"}


def _expose(img: imagefs.Image) -> None:
    assert config(img)["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8080/tcp": {}}


def _user(img: imagefs.Image) -> None:
    assert config(img)["User"] == "nobody"
    assert text(img, "tmp/uid") == "65534\n"
    assert img.files["tmp/uid"].info.uid == 65534


def _workdir(img: imagefs.Image) -> None:
    assert config(img)["WorkingDir"] == "/a/b/c"
    assert img.files["a/b/c"].info.isdir()
    assert text(img, "pwd") == "/a/b/c\n"


def _cmd_shell(img: imagefs.Image) -> None:
    assert config(img)["Cmd"] == ["/bin/sh", "-c", "echo hi there"]


def _cmd_exec(img: imagefs.Image) -> None:
    assert config(img)["Cmd"] == ["echo", "exec form"]


def _entrypoint(img: imagefs.Image) -> None:
    c = config(img)
    assert c["Entrypoint"] == ["/bin/echo", "entry"]
    assert "Cmd" not in c or c["Cmd"] is None  # the base stage's CMD is reset


def _entrypoint_then_cmd(img: imagefs.Image) -> None:
    c = config(img)
    assert c["Entrypoint"] == ["/bin/sh", "-c", "exec echo"] and c["Cmd"] == ["arg"]


def _stopsignal(img: imagefs.Image) -> None:
    assert config(img)["StopSignal"] == "SIGINT"


def _healthcheck(img: imagefs.Image) -> None:
    hc = config(img)["Healthcheck"]
    assert hc["Test"] == ["CMD-SHELL", "wget -q localhost || exit 1"]
    assert hc["Interval"] == 5_000_000_000 and hc["Timeout"] == 90_000_000_000
    assert hc["Retries"] == 2


def _healthcheck_none(img: imagefs.Image) -> None:
    assert config(img)["Healthcheck"] == {"Test": ["NONE"]}


def _shell(img: imagefs.Image) -> None:
    assert config(img)["Shell"] == ["/bin/sh", "-xc"]
    assert "x" in text(img, "flags")


def _volume(img: imagefs.Image) -> None:
    assert config(img)["Volumes"] == {"/data": {}, "/logs": {}}


def _onbuild(img: imagefs.Image) -> None:
    assert config(img)["OnBuild"] == ["RUN echo triggered > /t"]
    assert "t" not in img.files  # a trigger runs in images built FROM this one


def _onbuild_trigger(img: imagefs.Image) -> None:
    assert text(img, "t") == "triggered\n"
    assert "OnBuild" not in config(img) or not config(img)["OnBuild"]


def _arg(img: imagefs.Image) -> None:
    assert text(img, "v") == "given default2\n"
    assert "V" not in env(img) and "W" not in env(img)
    assert any("V=given" in h.get("created_by", "") for h in img.config["history"])


def _maintainer(img: imagefs.Image) -> None:
    assert img.config["author"] == "Jane <jane@example.org>"


def _run(img: imagefs.Image) -> None:
    assert text(img, "hello") == "hello\n"
    assert "etc/motd-gone" not in img.files
    last = img.config["history"][-1]
    assert last["created_by"].startswith("RUN /bin/sh -c echo hello")
    assert not last.get("empty_layer")
    assert set(img.top) >= {"hello", "etc/.wh.motd-gone"}


def _run_heredoc(img: imagefs.Image) -> None:
    assert text(img, "h") == "line one\nline two\n"


def _run_exec(img: imagefs.Image) -> None:
    assert text(img, "x") == "exec\n"


def _run_network_none(img: imagefs.Image) -> None:
    assert text(img, "ifaces").split() == ["lo"]


def _from_stage(img: imagefs.Image) -> None:
    assert env(img)["X"] == "from-base" and text(img, "base") == "b\n"


def _from_arg(img: imagefs.Image) -> None:
    assert text(img, "which") == "second\n"


def _tmpfs_mount(img: imagefs.Image) -> None:
    assert text(img, "seen") == "scratch\n"
    assert not any(k.startswith("scratch/") for k in img.files)


def _bind_mount(img: imagefs.Image) -> None:
    assert text(img, "copied") == "from the context\n"
    assert "ctx" not in img.files and "input.txt" not in img.files


ROWS = [
    Row("env", FROM + 'ENV A=1 B="two words"\nENV C=$A-x\n'
        'RUN echo "$A $B $C" > /seen\n', _env),
    Row("label", FROM + 'ARG L=v1\nLABEL a=b "c d"=e\nLABEL from-arg=$L\n', _label),
    Row("expose", FROM + "ARG P=8080\nEXPOSE 80 53/udp\nEXPOSE $P\n", _expose),
    Row("user", FROM + "USER nobody\nRUN id -u > /tmp/uid\n", _user),
    Row("workdir", FROM + "WORKDIR /a/b\nWORKDIR c\nRUN pwd > /pwd\n", _workdir),
    Row("cmd-shell", FROM + "CMD echo hi there\n", _cmd_shell),
    Row("cmd-exec", FROM + 'CMD ["echo", "exec form"]\n', _cmd_exec),
    Row("entrypoint", FROM + 'CMD ["x"]\nFROM busybox:latest AS base\nCMD ["base"]\n'
        'FROM base\nENTRYPOINT ["/bin/echo", "entry"]\n', _entrypoint),
    Row("entrypoint-cmd", FROM + 'ENTRYPOINT exec echo\nCMD ["arg"]\n', _entrypoint_then_cmd),
    Row("stopsignal", FROM + "STOPSIGNAL SIGINT\n", _stopsignal),
    Row("healthcheck", FROM + "HEALTHCHECK --interval=5s --timeout=1m30s --retries=2 "
        "CMD wget -q localhost || exit 1\n", _healthcheck),
    Row("healthcheck-none", FROM + "HEALTHCHECK NONE\n", _healthcheck_none),
    Row("shell", FROM + 'SHELL ["/bin/sh", "-xc"]\nRUN echo $- > /flags\n', _shell),
    Row("volume", FROM + 'VOLUME /data\nVOLUME ["/logs"]\n', _volume),
    Row("onbuild", FROM + "ONBUILD RUN echo triggered > /t\n", _onbuild),
    Row("arg", FROM + "ARG V=default\nARG W=default2\nRUN echo $V $W > /v\n", _arg,
        options={"build_args": {"V": "given"}}),
    Row("maintainer", FROM + "MAINTAINER Jane <jane@example.org>\n", _maintainer),
    Row("run", FROM + "RUN echo hello > /hello && touch /etc/motd-gone\n"
        "RUN echo hello > /hello && rm /etc/motd-gone\n", _run),
    Row("run-heredoc", FROM + "RUN <<EOF\necho line one > /h\necho line two >> /h\nEOF\n",
        _run_heredoc),
    Row("run-exec", FROM + 'RUN ["sh", "-c", "echo exec > /x"]\n', _run_exec),
    Row("run-network-none", FROM + "RUN --network=none tail -n +3 /proc/net/dev | "
        "cut -d: -f1 > /ifaces\n",
        _run_network_none),
    Row("run-tmpfs", FROM + "RUN --mount=type=tmpfs,target=/scratch sh -c "
        "'echo scratch > /scratch/f && cat /scratch/f > /seen'\n", _tmpfs_mount),
    Row("run-bind", FROM + "RUN --mount=type=bind,target=/ctx cat /ctx/input.txt > /copied\n",
        _bind_mount, files={"input.txt": "from the context\n"}),
    Row("from-stage", "FROM busybox:latest AS base\nENV X=from-base\nRUN echo b > /base\n"
        "FROM base\n", _from_stage),
    Row("from-arg", "ARG WHICH=second\nFROM busybox:latest AS first\nRUN echo first > /which\n"
        "FROM busybox:latest AS second\nRUN echo second > /which\nFROM ${WHICH}\n", _from_arg),
]


@pytest.fixture(scope="module")
def built(module_builder: Builder) -> dict[str, imagefs.Image | str]:
    images = {row.id: image for row, image in build_rows(module_builder, ROWS, "instr")}
    # ONBUILD: a second build FROM the image that holds the trigger
    base = images["onbuild"]
    assert not isinstance(base, str), base
    trigger_row = Row("onbuild-trigger", "FROM onbuild-base:latest\n", _onbuild_trigger)
    module_builder.batch([{
        "context": str(module_builder.tmp / "instr" / "onbuild"), "tags": ["onbuild-base:latest"]}])
    (_, images["onbuild-trigger"]), = build_rows(module_builder, [trigger_row], "instr")
    return images


@pytest.mark.parametrize("row", [*ROWS, Row("onbuild-trigger", "", _onbuild_trigger)],
                         ids=lambda r: r.id)
def test_instruction(row: Row, built: dict[str, imagefs.Image | str]) -> None:
    image = built[row.id]
    assert not isinstance(image, str), f"the build failed: {image}"
    row.check(image)
