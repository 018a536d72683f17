"""Typed instructions: every instruction's fields, flag validation, errors with locations."""

from __future__ import annotations

import subprocess

import pytest

from ocibuild.frontend.dockerfile import instructions as ins
from ocibuild.frontend.dockerfile.errors import DockerfileError
from ocibuild.frontend.dockerfile.instructions import parse_dockerfile
from ocibuild.frontend.dockerfile.mounts import parse_mount
from ocibuild.frontend.dockerfile.shell import ShellLex
from tests.support.paths import OCIBUILD


def _one(text: str) -> ins.Instruction:
    return parse_dockerfile("FROM scratch\n" + text).stages[0].instructions[0]


def test_stages_meta_args_and_from() -> None:
    df = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nARG BASE=alpine V\nFROM --platform=$P ${BASE} AS Build\n"
        "RUN make\nFROM build\nCOPY --from=build /o /o\n"
    )
    assert df.syntax == "docker/dockerfile:1"
    assert [a.args for a in df.meta_args] == [(ins.ArgSpec("BASE", "alpine"), ins.ArgSpec("V"))]
    first, second = df.stages
    assert (first.name, first.from_.base, first.from_.platform) == ("build", "${BASE}", "$P")
    assert first.from_.location.start_line == 3
    assert [i.name for i in first.instructions] == ["RUN"]
    assert second.name is None and second.index == 1


def test_instruction_before_from_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="before the first FROM") as info:
        parse_dockerfile("RUN x\nFROM a\n")
    assert info.value.line == 1


def test_env_and_label_both_forms() -> None:
    env = _one('ENV A=1 B="two words" C=\n')
    assert isinstance(env, ins.EnvInstruction)
    assert env.pairs == (ins.KeyValue("A", "1"), ins.KeyValue("B", '"two words"'),
                         ins.KeyValue("C", ""))
    legacy = _one("ENV PATH /usr/bin:$PATH\n")
    assert legacy.pairs == (ins.KeyValue("PATH", "/usr/bin:$PATH", legacy=True),)  # type: ignore[attr-defined]
    label = _one('LABEL org.x="y" z=1\n')
    assert label.pairs == (ins.KeyValue("org.x", '"y"'), ins.KeyValue("z", "1"))  # type: ignore[attr-defined]
    legacy_label = _one("LABEL maintainer me <me@x>\n")
    assert legacy_label.pairs == (ins.KeyValue("maintainer", "me <me@x>", legacy=True),)  # type: ignore[attr-defined]
    with pytest.raises(DockerfileError, match="can't find = in"):
        _one("ENV A=1 B\n")


def test_run_forms_and_flags() -> None:
    run = _one('RUN ["sh", "-c", "echo hi"]\n')
    assert isinstance(run, ins.RunInstruction)
    assert run.command == ("sh", "-c", "echo hi") and not run.shell_form
    run = _one("RUN --network=none --security=insecure echo hi\n")
    assert (run.command, run.shell_form, run.network, run.security) == (  # type: ignore[attr-defined]
        ("echo hi",), True, "none", "insecure",
    )
    with pytest.raises(DockerfileError, match=r"mode 'hots' \(did you mean host\?\)"):
        _one("RUN --network=hots x\n")


def test_run_mounts_of_every_type() -> None:
    run = _one(
        "RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0700,uid=1,gid=2 "
        "--mount=type=secret,id=tok,env=TOKEN,required "
        "--mount=type=bind,from=builder,source=/out,dst=/in,rw "
        "--mount=type=tmpfs,destination=/tmp,size=64m "
        "--mount=type=ssh --mount=target=/ctx make\n"
    )
    cache, secret, bind, tmpfs, ssh, default = run.mounts  # type: ignore[attr-defined]
    assert (cache.type, cache.target, cache.id, cache.sharing, cache.mode, cache.uid, cache.gid,
            cache.readonly) == ("cache", "/root/.cache", "pip", "locked", 0o700, 1, 2, False)
    assert (secret.type, secret.id, secret.env, secret.required, secret.readonly) == (
        "secret", "tok", "TOKEN", True, True)
    assert (bind.from_, bind.source, bind.target, bind.readonly) == (
        "builder", "/out", "/in", False)
    assert (tmpfs.target, tmpfs.size) == ("/tmp", 64 << 20)
    assert ssh.type == "ssh" and default.type == "bind" and default.readonly


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("type=cahce,target=/x", "unsupported mount type 'cahce' (did you mean cache?)"),
        ("type=cache,target=/x,sharing=lockd", "did you mean locked?"),
        ("type=cache,taget=/x", "unexpected key 'taget'"),
        ("type=bind,target=/x,mode=0700", "mode not allowed for 'bind'"),
        ("type=secret,from=x,id=a", "secret mount should not have a from"),
        ("type=cache,target=/x,uid=abc", "invalid value abc for uid"),
        ("type=bind,target=/x,required", "unexpected key 'required'"),
        ("type=bind,from=$STAGE,target=/x", "doesn't support variable expansion"),
        ("type=cache", "requires a target"),
    ],
)
def test_bad_mounts_are_explained(spec: str, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        _one(f"RUN --mount={spec} x\n")
    assert message in info.value.reason
    assert info.value.line == 2


def test_mount_values_with_variables_are_expanded_later() -> None:
    run = _one("RUN --mount=type=cache,target=$DIR,uid=$UID x\n")
    assert isinstance(run, ins.RunInstruction)
    assert run.mounts[0].deferred and run.mounts[0].target == "$DIR"
    lex = ShellLex()
    (mount,) = run.expand_mounts(lambda w: lex.expand_word(w, {"DIR": "/c", "UID": "7"}))
    assert (mount.target, mount.uid, mount.deferred) == ("/c", 7, False)
    assert parse_mount("type=tmpfs,target=/t,size=1.5g").size == int(1.5 * (1 << 30))


def test_copy_and_add_flags() -> None:
    copy = _one("COPY --from=b --chown=1:2 --chmod=644 --link --parents --exclude=*.md "
                "--exclude=x a b /d/\n")
    assert isinstance(copy, ins.CopyInstruction)
    assert (copy.sources, copy.dest, copy.from_, copy.chown, copy.chmod, copy.link, copy.parents,
            copy.excludes) == (("a", "b"), "/d/", "b", "1:2", "644", True, True, ("*.md", "x"))
    add = _one("ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false --link=false "
               "https://x/y.tgz /z\n")
    assert isinstance(add, ins.AddInstruction)
    assert (add.checksum, add.keep_git_dir, add.unpack, add.link) == (
        "sha256:abc", True, False, False)
    json_copy = _one('COPY ["a b", "/c d"]\n')
    assert json_copy.sources == ("a b",) and json_copy.dest == "/c d"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("COPY --fom=x a b", "unknown flag: --fom for COPY (did you mean --from?)"),
        ("COPY --chwon=1 a b", "(did you mean --chown?)"),
        ("ADD --from=x a b", "unknown flag: --from for ADD"),
        ("RUN --mout=type=bind,target=/x x", "(did you mean --mount?)"),
        ("HEALTHCHECK --intervall=5s CMD x", "(did you mean --interval?)"),
        ("ENV --x=1 A=1", "ENV takes no flags"),
        ("COPY --link=maybe a b", "expecting boolean value for flag --link"),
        ("COPY --from a b", "missing a value on flag: --from"),
        ("COPY --from=a --from=b a b", "duplicate flag specified: --from"),
        ("COPY a", "requires at least two arguments"),
    ],
)
def test_flag_errors_name_flag_line_and_suggestion(line: str, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        _one(line + "\n")
    assert message in info.value.reason
    assert info.value.line == 2


def test_unknown_flag_error_points_at_the_flag() -> None:
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile("FROM a\nCOPY --link --fom=x a b\n")
    err = info.value
    assert (err.line, err.column) == (2, 13)
    assert err.render() == (
        "Dockerfile:2:13: unknown flag: --fom for COPY (did you mean --from?)\n"
        "COPY --link --fom=x a b\n"
        "            ^"
    )


def test_expose_ports() -> None:
    expose = _one("EXPOSE 80 53/udp 8000-8010/tcp $PORT\n")
    assert expose.ports == ("80", "53/udp", "8000-8010/tcp", "$PORT")  # type: ignore[attr-defined]
    assert ins.parse_port_spec("8000-8010/udp") == ins.PortSpec(8000, 8010, "udp")
    # BuildKit still takes a host side (and drops it); only its shape is checked
    assert ins.parse_port_spec("[::1]:8080-8081:80-81/udp") == ins.PortSpec(80, 81, "udp")
    with pytest.raises(ValueError, match="invalid IP address"):
        ins.parse_port_spec("localhost:8080:80")
    with pytest.raises(DockerfileError, match="invalid protocol"):
        _one("EXPOSE 80/tpc\n")
    with pytest.raises(DockerfileError, match="invalid port"):
        _one("EXPOSE http\n")


@pytest.mark.parametrize("port", ["[fe80::1%eth0]:8080:80", "fe80::1%25eth0:8080:80/udp"])
def test_expose_refuses_an_ipv6_zone_as_go_parse_ip_does(port: str) -> None:
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile(f"FROM scratch\nEXPOSE 443 \\\n  {port}\n")
    assert (info.value.filename, info.value.line, info.value.column) == ("Dockerfile", 3, 3)
    assert "an IPv6 zone (%" in info.value.reason
    assert ins.parse_port_spec("[fe80::1]:8080:80") == ins.PortSpec(80, 80, "tcp")


def test_expose_port_numbers_take_a_plus_sign_as_go_parse_int_does() -> None:
    assert ins.parse_port_spec("+80-+81/udp") == ins.PortSpec(80, 81, "udp")


def test_shell_must_be_json() -> None:
    shell = _one('SHELL ["/bin/bash", "-euc"]\n')
    assert shell.shell == ("/bin/bash", "-euc")  # type: ignore[attr-defined]
    with pytest.raises(DockerfileError, match="JSON form"):
        _one("SHELL /bin/bash -c\n")


def test_healthcheck_forms() -> None:
    hc = _one("HEALTHCHECK --interval=1m30s --timeout=3s --start-period=1s "
              "--start-interval=500ms --retries=3 CMD curl -f http://x/\n")
    assert isinstance(hc, ins.HealthcheckInstruction)
    assert hc.test == ("CMD-SHELL", "curl -f http://x/")
    assert (hc.interval_ns, hc.timeout_ns, hc.start_period_ns, hc.start_interval_ns,
            hc.retries) == (90 * 10**9, 3 * 10**9, 10**9, 5 * 10**8, 3)
    assert _one('HEALTHCHECK CMD ["true"]\n').test == ("CMD", "true")  # type: ignore[attr-defined]
    assert _one("HEALTHCHECK NONE\n").test == ("NONE",)  # type: ignore[attr-defined]
    for bad, message in [("HEALTHCHECK NONE x", "takes no arguments"),
                         ("HEALTHCHECK --retries=-1 CMD x", "cannot be negative"),
                         ("HEALTHCHECK --timeout=1us CMD x", "cannot be less than 1ms"),
                         ("HEALTHCHECK --timeout=5 CMD x", "invalid duration"),
                         ("HEALTHCHECK CONNECT x", "Unknown type"),
                         ("HEALTHCHECK CMD", "Missing command")]:
        with pytest.raises(DockerfileError, match=message):
            _one(bad + "\n")


def test_simple_instructions() -> None:
    assert _one("STOPSIGNAL SIGKILL\n").signal == "SIGKILL"  # type: ignore[attr-defined]
    assert _one("USER app:app\n").user == "app:app"  # type: ignore[attr-defined]
    assert _one("WORKDIR /a b\n").path == "/a b"  # type: ignore[attr-defined]
    assert _one("VOLUME /a /b\n").volumes == ("/a", "/b")  # type: ignore[attr-defined]
    assert _one('VOLUME ["/a", "/b c"]\n').volumes == ("/a", "/b c")  # type: ignore[attr-defined]
    assert _one("MAINTAINER me\n").maintainer == "me"  # type: ignore[attr-defined]
    cmd = _one("CMD echo $HOME\n")
    assert (cmd.command, cmd.shell_form) == (("echo $HOME",), True)  # type: ignore[attr-defined]
    entry = _one('ENTRYPOINT ["/bin/app", "--x"]\n')
    assert (entry.command, entry.shell_form) == (("/bin/app", "--x"), False)  # type: ignore[attr-defined]
    assert _one("CMD []\n").command == ()  # type: ignore[attr-defined]


def test_onbuild() -> None:
    onbuild = _one("ONBUILD COPY --from=x a /b\n")
    assert isinstance(onbuild, ins.OnbuildInstruction)
    assert isinstance(onbuild.trigger, ins.CopyInstruction)
    assert onbuild.expression == "COPY --from=x a /b"
    for bad in ("ONBUILD ONBUILD RUN x", "ONBUILD FROM a", "ONBUILD MAINTAINER me"):
        with pytest.raises(DockerfileError, match="ONBUILD"):
            _one(bad + "\n")


def test_unknown_instruction_suggests_the_nearest() -> None:
    with pytest.raises(DockerfileError, match=r"unknown instruction: RUUN \(did you mean RUN\?\)"):
        _one("RUUN x\n")


def test_from_arguments() -> None:
    with pytest.raises(DockerfileError, match="one or three arguments"):
        parse_dockerfile("FROM a b\n")
    with pytest.raises(DockerfileError, match="invalid name for build stage"):
        parse_dockerfile("FROM a AS 1x\n")


def test_cli_prints_location_line_and_caret_without_traceback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM a\nCOPY --fom=x a b\n")
    res = subprocess.run([OCIBUILD, "debug", "instructions", "-f", str(dockerfile)],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 1
    assert res.stderr == (
        f"{dockerfile}:2:6: unknown flag: --fom for COPY (did you mean --from?)\n"
        "COPY --fom=x a b\n"
        "     ^\n"
    )
    debug = subprocess.run([OCIBUILD, "--debug", "debug", "instructions", "-f", str(dockerfile)],
                           capture_output=True, text=True, check=False)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_cli_parse_error_of_debug_ast(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM a\nRUN <<EOF\necho\n")
    res = subprocess.run([OCIBUILD, "debug", "ast", "-f", str(dockerfile)],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 1
    assert res.stderr.splitlines() == [f"{dockerfile}:2:1: unterminated heredoc", "RUN <<EOF", "^"]
