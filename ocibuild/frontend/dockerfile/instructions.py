"""AST nodes -> typed, validated instructions, grouped into build stages.

Nothing is expanded here: arguments keep their `$VARS` (the converter, `convert`,
takes these objects and expands them with `shell.ShellLex` once ARG/ENV scoping is
known; it parses no flag or argument again). Flags are validated (unknown or
misspelt ones name the nearest valid flag), RUN mounts parsed.

Public API:

- `parse_dockerfile(text, filename="Dockerfile") -> Dockerfile`: directives,
  global ARGs (before the first FROM) and stages with their instructions.
- `parse_instruction(node, ast) -> Instruction`: one AST node.
- `parse_duration(text) -> int`: Go duration ("1m30s") in nanoseconds.
- `parse_port_spec(text) -> PortSpec`: an EXPOSE item (`80`, `53/udp`, `8000-8010/tcp`;
  BuildKit's `[IP:]HOST:PORT` form is accepted, its host side dropped).
- `error_at(location, message, token, ast=) -> DockerfileError`: an error pointing at a
  word of an instruction.
- Instruction classes (frozen dataclasses, all with `name`, `original`,
  `location`, `flags`): FromInstruction, ArgInstruction, EnvInstruction,
  LabelInstruction, RunInstruction, CmdInstruction, EntrypointInstruction,
  CopyInstruction, AddInstruction, ExposeInstruction, ShellInstruction,
  HealthcheckInstruction, StopSignalInstruction, UserInstruction,
  WorkdirInstruction, VolumeInstruction, MaintainerInstruction,
  OnbuildInstruction. Helpers: Location, KeyValue, ArgSpec, SourceContent,
  PortSpec, Stage, Dockerfile; `RunMount` lives in `mounts`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from ocibuild.deferred import deferred_dataclass
from ocibuild.frontend.dockerfile.errors import DockerfileError
from ocibuild.frontend.dockerfile.flags import FlagError, FlagSpec, nearest, parse_flags
from ocibuild.frontend.dockerfile.mounts import RunMount, parse_mount
from ocibuild.frontend.dockerfile.parser import (
    AST,
    INSTRUCTIONS,
    Directive,
    Heredoc,
    Node,
    chomp_heredoc,
    parse,
    parse_heredoc,
)

NETWORK_MODES = ("default", "none", "host")
SECURITY_MODES = ("sandbox", "insecure")


# -- data ------------------------------------------------------------------------


@deferred_dataclass(frozen=True)
class Location:
    """Where an instruction was written: its file, its first and last lines, and its column."""
    filename: str
    start_line: int
    end_line: int
    column: int


@deferred_dataclass(frozen=True, kw_only=True)
class Instruction:
    """An instruction of a Dockerfile as parsed, before its variables are expanded."""
    name: str  # upper case keyword: "RUN"
    original: str  # the instruction's text, continuation lines joined
    location: Location
    flags: tuple[str, ...] = ()


@deferred_dataclass(frozen=True)
class KeyValue:
    """A KEY=value pair of ENV or LABEL."""
    key: str
    value: str
    legacy: bool = False  # written `KEY value` instead of `KEY=value`


@deferred_dataclass(frozen=True)
class ArgSpec:
    """An ARG's name and its default (None: none given)."""
    key: str
    default: str | None = None


@deferred_dataclass(frozen=True)
class SourceContent:
    """A heredoc used as a COPY/ADD source: `path` is the file name it gets."""

    path: str
    data: str
    expand: bool


@deferred_dataclass(frozen=True)
class PortSpec:
    """An EXPOSE port or port range and its protocol."""
    start: int
    end: int
    protocol: str = "tcp"


@deferred_dataclass(frozen=True, kw_only=True)
class FromInstruction(Instruction):
    """FROM: the base (an image or an earlier stage), the stage's name and --platform."""
    base: str
    stage_name: str | None = None
    platform: str | None = None


@deferred_dataclass(frozen=True, kw_only=True)
class ArgInstruction(Instruction):
    """ARG: the build arguments it declares."""
    args: tuple[ArgSpec, ...]


@deferred_dataclass(frozen=True, kw_only=True)
class EnvInstruction(Instruction):
    """ENV: the variables it sets."""
    pairs: tuple[KeyValue, ...]


@deferred_dataclass(frozen=True, kw_only=True)
class LabelInstruction(Instruction):
    """LABEL: the labels it sets."""
    pairs: tuple[KeyValue, ...]


@deferred_dataclass(frozen=True, kw_only=True)
class _CommandLine(Instruction):
    """What RUN, CMD and ENTRYPOINT share: a command in exec or shell form."""
    command: tuple[str, ...]  # exec form: argv; shell form: one string
    shell_form: bool  # True: run through the SHELL (`prepend shell`)
    heredocs: tuple[Heredoc, ...] = ()


@deferred_dataclass(frozen=True, kw_only=True)
class RunInstruction(_CommandLine):
    """RUN: its command, --mount, --network and --security flags."""
    mounts: tuple[RunMount, ...] = ()
    network: str = "default"
    security: str = "sandbox"

    def expand_mounts(self, expand: Callable[[str], str]) -> tuple[RunMount, ...]:
        """The mounts with variables expanded (raises DockerfileError)."""
        out = []
        for m in self.mounts:
            try:
                out.append(parse_mount(m.raw, expand))
            except ValueError as exc:
                raise error_at(self.location, str(exc), m.raw) from None
        return tuple(out)


@deferred_dataclass(frozen=True, kw_only=True)
class CmdInstruction(_CommandLine):
    """CMD: the image's default command."""
    pass


@deferred_dataclass(frozen=True, kw_only=True)
class EntrypointInstruction(_CommandLine):
    """ENTRYPOINT: the image's entrypoint."""
    pass


@deferred_dataclass(frozen=True, kw_only=True)
class CopyInstruction(Instruction):
    """COPY: its sources (or here-documents), destination and flags."""
    sources: tuple[str, ...]
    dest: str
    source_contents: tuple[SourceContent, ...] = ()
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    excludes: tuple[str, ...] = ()


@deferred_dataclass(frozen=True, kw_only=True)
class AddInstruction(Instruction):
    """ADD: its sources (files, URLs, git repositories), destination and flags."""
    sources: tuple[str, ...]
    dest: str
    source_contents: tuple[SourceContent, ...] = ()
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    keep_git_dir: bool | None = None
    checksum: str | None = None
    unpack: bool | None = None
    excludes: tuple[str, ...] = ()


@deferred_dataclass(frozen=True, kw_only=True)
class ExposeInstruction(Instruction):
    """EXPOSE: the ports as written."""
    ports: tuple[str, ...]  # as written; parse_port_spec after expansion


@deferred_dataclass(frozen=True, kw_only=True)
class ShellInstruction(Instruction):
    """SHELL: the shell that runs shell-form commands."""
    shell: tuple[str, ...]


@deferred_dataclass(frozen=True, kw_only=True)
class HealthcheckInstruction(Instruction):
    """HEALTHCHECK: the test and its timings, as the image's config holds them."""
    test: tuple[str, ...]  # ("NONE",) | ("CMD", argv...) | ("CMD-SHELL", "cmd")
    interval_ns: int = 0
    timeout_ns: int = 0
    start_period_ns: int = 0
    start_interval_ns: int = 0
    retries: int = 0


@deferred_dataclass(frozen=True, kw_only=True)
class StopSignalInstruction(Instruction):
    """STOPSIGNAL: the signal that stops a container."""
    signal: str


@deferred_dataclass(frozen=True, kw_only=True)
class UserInstruction(Instruction):
    """USER: the user (and group) later instructions and containers run as."""
    user: str


@deferred_dataclass(frozen=True, kw_only=True)
class WorkdirInstruction(Instruction):
    """WORKDIR: the working directory later instructions and containers use."""
    path: str


@deferred_dataclass(frozen=True, kw_only=True)
class VolumeInstruction(Instruction):
    """VOLUME: the mount points the image declares."""
    volumes: tuple[str, ...]


@deferred_dataclass(frozen=True, kw_only=True)
class MaintainerInstruction(Instruction):
    """MAINTAINER (deprecated): the image's author."""
    maintainer: str


@deferred_dataclass(frozen=True, kw_only=True)
class OnbuildInstruction(Instruction):
    """ONBUILD: an instruction kept in the image for the builds that start FROM it."""
    expression: str  # the trigger as text (with heredoc bodies), stored in the image
    trigger: Instruction


@deferred_dataclass(frozen=True)
class Stage:
    """A build stage: its FROM and the instructions that follow it."""
    index: int
    from_: FromInstruction
    instructions: tuple[Instruction, ...]

    @property
    def name(self) -> str | None:
        return self.from_.stage_name


@deferred_dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: its directives, the ARGs before the first FROM, and its stages."""
    filename: str
    directives: tuple[Directive, ...]
    escape: str
    meta_args: tuple[ArgInstruction, ...]
    stages: tuple[Stage, ...]
    ast: AST

    @property
    def syntax(self) -> str | None:
        return self.ast.directive("syntax")


# -- errors ------------------------------------------------------------------------


class _Invalid(ValueError):
    def __init__(self, message: str, token: str | None = None) -> None:
        super().__init__(message)
        self.token = token


def error_at(loc: Location, message: str, token: str | None, source: str | None = None,
             ast: AST | None = None) -> DockerfileError:
    """An error at the instruction, or at `token` where the instruction's lines in `ast`
    hold it."""
    column = loc.column
    line = loc.start_line
    if ast is not None and token:
        for number in range(loc.start_line, loc.end_line + 1):
            text = ast.source_line(number) or ""
            found = text.find(token)
            if found >= 0:
                line, column = number, found + 1
                break
    return DockerfileError(
        message,
        filename=loc.filename,
        line=line,
        column=column,
        end_line=loc.end_line,
        source_line=ast.source_line(line) if ast is not None else source,
    )


# -- parsing -----------------------------------------------------------------------


def parse_dockerfile(text: str | bytes, filename: str = "Dockerfile") -> Dockerfile:
    """Parse and type-check a whole Dockerfile (raises DockerfileError)."""
    ast = parse(text, filename)
    meta_args: list[ArgInstruction] = []
    stages: list[tuple[FromInstruction, list[Instruction]]] = []
    for node in ast.nodes:
        inst = parse_instruction(node, ast)
        if isinstance(inst, FromInstruction):
            stages.append((inst, []))
        elif not stages:
            if isinstance(inst, ArgInstruction):
                meta_args.append(inst)
            else:
                raise error_at(
                    inst.location,
                    f"{inst.name} before the first FROM: no build stage in current context",
                    None,
                    ast=ast,
                )
        else:
            stages[-1][1].append(inst)
    return Dockerfile(
        filename=filename,
        directives=ast.directives,
        escape=ast.escape,
        meta_args=tuple(meta_args),
        stages=tuple(Stage(i, f, tuple(cmds)) for i, (f, cmds) in enumerate(stages)),
        ast=ast,
    )


def parse_instruction(node: Node, ast: AST) -> Instruction:
    loc = Location(ast.filename, node.start_line, node.end_line, node.column)
    try:
        return _parse_node(node, loc)
    except FlagError as exc:
        raise error_at(loc, str(exc), exc.flag, ast=ast) from None
    except _Invalid as exc:
        raise error_at(loc, str(exc), exc.token, ast=ast) from None
    except ValueError as exc:
        raise error_at(loc, str(exc), None, ast=ast) from None


def _parse_node(node: Node, loc: Location) -> Instruction:
    name = node.name
    parser = _PARSERS.get(name)
    if parser is None:
        guess = nearest(name, INSTRUCTIONS)
        hint = f" (did you mean {guess.upper()}?)" if guess else ""
        raise _Invalid(f"unknown instruction: {node.command}{hint}", node.command)
    base = {"name": name.upper(), "original": node.original, "location": loc, "flags": node.flags}
    return parser(node, base)


_Base = dict


def _flags(node: Node, specs: tuple[FlagSpec, ...]) -> dict[str, bool | str | tuple[str, ...]]:
    return parse_flags(node.flags, specs, node.name.upper())


def _command_line(node: Node) -> tuple[tuple[str, ...], bool]:
    if not node.args:
        return (), not node.json
    if node.json:
        return node.args, False
    return (" ".join(node.args),), True


def _exactly_one(node: Node) -> str:
    if len(node.args) != 1:
        raise _Invalid(f"{node.name.upper()} requires exactly one argument")
    return node.args[0]


def _at_least_one(node: Node) -> None:
    if not node.args:
        raise _Invalid(f"{node.name.upper()} requires at least one argument")


def _pairs(node: Node) -> tuple[KeyValue, ...]:
    _at_least_one(node)
    args = node.args
    out = []
    for i in range(0, len(args) - 2, 3):
        key, value, sep = args[i], args[i + 1], args[i + 2]
        if not key:
            raise _Invalid(f"{node.name.upper()} names can not be blank")
        out.append(KeyValue(key, value, legacy=sep == ""))
    return tuple(out)


_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*\Z")


def _from(node: Node, base: _Base) -> Instruction:
    values = _flags(node, (FlagSpec("platform"),))
    args = node.args
    stage_name = None
    if len(args) == 3 and args[1].lower() == "as":
        stage_name = args[2].lower()
        if not _STAGE_NAME.match(stage_name):
            raise _Invalid(
                f"invalid name for build stage: {args[2]!r}, name can't start with a number "
                "or contain symbols",
                args[2],
            )
    elif len(args) != 1:
        raise _Invalid("FROM requires either one or three arguments (FROM image [AS name])")
    platform = values.get("platform")
    return FromInstruction(
        **base, base=args[0], stage_name=stage_name,
        platform=platform if isinstance(platform, str) else None,
    )


def _arg(node: Node, base: _Base) -> Instruction:
    _flags(node, ())
    _at_least_one(node)
    specs = []
    for word in node.args:
        if "=" in word:
            key, value = word.split("=", 1)
            if not key:
                raise _Invalid("ARG names can not be blank", word)
            specs.append(ArgSpec(key, value))
        else:
            specs.append(ArgSpec(word))
    return ArgInstruction(**base, args=tuple(specs))


def _env(node: Node, base: _Base) -> Instruction:
    _flags(node, ())
    return EnvInstruction(**base, pairs=_pairs(node))


def _label(node: Node, base: _Base) -> Instruction:
    _flags(node, ())
    return LabelInstruction(**base, pairs=_pairs(node))


_RUN_FLAGS = (FlagSpec("mount", "strings"), FlagSpec("network"), FlagSpec("security"))


def _run(node: Node, base: _Base) -> Instruction:
    values = _flags(node, _RUN_FLAGS)
    command, shell_form = _command_line(node)
    if not command:
        raise _Invalid("RUN requires at least one argument")
    network = str(values.get("network", "default"))
    if network not in NETWORK_MODES:
        raise _Invalid(_with_guess(f"invalid network mode {network!r}", network, NETWORK_MODES),
                       "--network")
    security = str(values.get("security", "sandbox"))
    if security not in SECURITY_MODES:
        raise _Invalid(_with_guess(f"security {security!r} is not valid", security,
                                   SECURITY_MODES), "--security")
    mounts = []
    raw_mounts = values.get("mount", ())
    assert isinstance(raw_mounts, tuple)
    for spec in raw_mounts:
        try:
            mounts.append(parse_mount(spec))
        except ValueError as exc:
            raise _Invalid(f"--mount={spec}: {exc}", spec) from None
    return RunInstruction(
        **base, command=command, shell_form=shell_form, heredocs=node.heredocs,
        mounts=tuple(mounts), network=network, security=security,
    )


def _with_guess(message: str, value: str, options: tuple[str, ...]) -> str:
    guess = nearest(value, options)
    return f"{message} (did you mean {guess}?)" if guess else message


def _cmd(node: Node, base: _Base) -> Instruction:
    _flags(node, ())
    command, shell_form = _command_line(node)
    return CmdInstruction(**base, command=command, shell_form=shell_form, heredocs=node.heredocs)


def _entrypoint(node: Node, base: _Base) -> Instruction:
    _flags(node, ())
    command, shell_form = _command_line(node)
    return EntrypointInstruction(
        **base, command=command, shell_form=shell_form, heredocs=node.heredocs
    )


def _sources_and_dest(node: Node) -> tuple[tuple[str, ...], tuple[SourceContent, ...], str]:
    command = node.name.upper()
    if len(node.args) < 2:
        raise _Invalid(
            f"{command} requires at least two arguments, but only one was provided. "
            "Destination could not be determined"
        )
    *srcs, dest = node.args
    if node.json:
        return tuple(srcs), (), dest
    if parse_heredoc(dest) is not None:
        raise _Invalid(f"{command} cannot accept a heredoc as a destination", dest)
    bodies = {doc.name: doc for doc in node.heredocs}
    paths: list[str] = []
    contents: list[SourceContent] = []
    for src in srcs:
        doc = parse_heredoc(src)
        if doc is None:
            paths.append(src)
            continue
        body = bodies.get(doc.name)
        data = body.content if body is not None else ""
        if doc.chomp:
            data = chomp_heredoc(data)
        contents.append(SourceContent(path=doc.name, data=data, expand=doc.expand))
    return tuple(paths), tuple(contents), dest


def _opt_str(values: dict[str, bool | str | tuple[str, ...]], key: str) -> str | None:
    value = values.get(key)
    return value if isinstance(value, str) else None


def _opt_bool(values: dict[str, bool | str | tuple[str, ...]], key: str) -> bool | None:
    value = values.get(key)
    return value if isinstance(value, bool) else None


def _strings(values: dict[str, bool | str | tuple[str, ...]], key: str) -> tuple[str, ...]:
    value = values.get(key, ())
    return value if isinstance(value, tuple) else ()


_COPY_FLAGS = (
    FlagSpec("from"), FlagSpec("chown"), FlagSpec("chmod"), FlagSpec("link", "bool"),
    FlagSpec("exclude", "strings"), FlagSpec("parents", "bool"),
)
_ADD_FLAGS = (
    FlagSpec("chown"), FlagSpec("chmod"), FlagSpec("link", "bool"),
    FlagSpec("keep-git-dir", "bool"), FlagSpec("checksum"), FlagSpec("unpack", "bool"),
    FlagSpec("exclude", "strings"),
)


def _copy(node: Node, base: _Base) -> Instruction:
    values = _flags(node, _COPY_FLAGS)
    sources, contents, dest = _sources_and_dest(node)
    return CopyInstruction(
        **base, sources=sources, dest=dest, source_contents=contents,
        from_=_opt_str(values, "from"), chown=_opt_str(values, "chown"),
        chmod=_opt_str(values, "chmod"), link=bool(values.get("link", False)),
        parents=bool(values.get("parents", False)), excludes=_strings(values, "exclude"),
    )


def _add(node: Node, base: _Base) -> Instruction:
    values = _flags(node, _ADD_FLAGS)
    sources, contents, dest = _sources_and_dest(node)
    return AddInstruction(
        **base, sources=sources, dest=dest, source_contents=contents,
        chown=_opt_str(values, "chown"), chmod=_opt_str(values, "chmod"),
        link=bool(values.get("link", False)), keep_git_dir=_opt_bool(values, "keep-git-dir"),
        checksum=_opt_str(values, "checksum"), unpack=_opt_bool(values, "unpack"),
        excludes=_strings(values, "exclude"),
    )


# Go's strconv.ParseInt, which BuildKit reads port numbers with, takes a leading "+"
@functools.cache
def _port_range_pattern() -> re.Pattern[str]:
    return re.compile(r"(\+?[0-9]+)(?:-(\+?[0-9]+))?\Z")


def parse_port_spec(text: str) -> PortSpec:
    """An EXPOSE item: [[IP:]HOST_PORT:]PORT[-END][/tcp|udp|sctp]. As in BuildKit, a host
    side is checked and then dropped: only the container's ports are exposed."""
    mapping, _, container = text.rpartition(":")
    port, _, proto = container.partition("/")
    protocol = proto.lower() or "tcp"
    if protocol not in ("tcp", "udp", "sctp"):
        raise ValueError(f"invalid protocol {proto!r} in port {text!r} (tcp, udp or sctp)")
    start, end = _port_range(port, text)
    if mapping:
        ip, _, host = mapping.rpartition(":")
        if ip:
            _check_ip(ip, text)
        if host:
            host_start, host_end = _port_range(host, text)
            if end != start and end - start != host_end - host_start:
                raise ValueError(f"invalid port {text!r}: the host and container port "
                                 "ranges differ in size")
    return PortSpec(start, end, protocol)


def _port_range(port: str, text: str) -> tuple[int, int]:
    m = _port_range_pattern().match(port)
    if m is None:
        raise ValueError(f"invalid port {text!r}: expected PORT, PORT/PROTO or START-END[/PROTO]")
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else start
    if start > 65535 or end > 65535 or end < start:
        raise ValueError(f"invalid port range {text!r}")
    return start, end


def _check_ip(ip: str, text: str) -> None:
    """The IP of EXPOSE's IP:HOST:PORT form, checked as BuildKit's Go net.ParseIP does: an
    IPv6 zone (`fe80::1%eth0`), which Python's ipaddress accepts, is refused."""
    import ipaddress  # only for the rare EXPOSE IP:HOST:PORT form

    address = ip[1:-1] if ip.startswith("[") and ip.endswith("]") else ip
    if "%" in address:
        raise ValueError(f"invalid IP address {ip!r} in port {text!r}: an IPv6 zone "
                         f"({address[address.index('%'):]}) is not accepted")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"invalid IP address {ip!r} in port {text!r} (the form with an "
                         "address is IP:HOST_PORT:PORT, an IPv6 address in [])") from None


def _expose(node: Node, base: _Base) -> Instruction:
    _flags(node, ())
    _at_least_one(node)
    for port in node.args:
        if "$" not in port:
            try:
                parse_port_spec(port)
            except ValueError as exc:
                raise _Invalid(str(exc), port) from None
    return ExposeInstruction(**base, ports=node.args)


def _shell(node: Node, base: _Base) -> Instruction:
    _flags(node, ())
    if not node.args:
        raise _Invalid("SHELL requires at least one argument")
    if not node.json:
        raise _Invalid(
            f'SHELL requires the arguments to be in JSON form, e.g. SHELL ["/bin/sh", "-c"]: '
            f"{node.original}"
        )
    return ShellInstruction(**base, shell=node.args)


_DURATION_UNITS = {
    "ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
    "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
}


@functools.cache
def _duration_part() -> re.Pattern[str]:
    return re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds."""
    body = text
    sign = 1
    if body[:1] in ("-", "+"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "0":
        return 0
    if not body:
        raise ValueError(f"time: invalid duration {text!r}")
    total = 0.0
    pos = 0
    while pos < len(body):
        m = _duration_part().match(body, pos)
        if m is None or m.group(1) in ("", "."):
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return sign * round(total)


_HEALTH_FLAGS = (
    FlagSpec("interval"), FlagSpec("timeout"), FlagSpec("start-period"),
    FlagSpec("start-interval"), FlagSpec("retries"),
)


def _healthcheck(node: Node, base: _Base) -> Instruction:
    _at_least_one(node)
    kind = node.args[0].upper()
    rest = node.args[1:]
    if kind == "NONE":  # BuildKit reads no flags here: any given are ignored
        if rest:
            raise _Invalid("HEALTHCHECK NONE takes no arguments")
        return HealthcheckInstruction(**base, test=("NONE",))
    values = _flags(node, _HEALTH_FLAGS)
    if kind != "CMD":
        raise _Invalid(f'Unknown type "{node.args[0]}" in HEALTHCHECK (try CMD)', node.args[0])
    if not rest:
        raise _Invalid("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *rest) if node.json else ("CMD-SHELL", " ".join(rest))
    durations: dict[str, int] = {}
    for flag in ("interval", "timeout", "start-period", "start-interval"):
        text = _opt_str(values, flag)
        if not text:
            durations[flag] = 0
            continue
        try:
            value = parse_duration(text)
        except ValueError as exc:
            raise _Invalid(f"--{flag}: {exc}", f"--{flag}") from None
        if 0 < value < 1_000_000 or value < 0:
            raise _Invalid(f"Interval \"{flag}\" cannot be less than 1ms", f"--{flag}")
        durations[flag] = value
    retries = 0
    text = _opt_str(values, "retries")
    if text:
        try:
            retries = int(text, 10)
        except ValueError:
            raise _Invalid(f"--retries: invalid number {text!r}", "--retries") from None
        if retries < 0:
            raise _Invalid(f"--retries cannot be negative ({retries})", "--retries")
    return HealthcheckInstruction(
        **base, test=test, interval_ns=durations["interval"], timeout_ns=durations["timeout"],
        start_period_ns=durations["start-period"],
        start_interval_ns=durations["start-interval"], retries=retries,
    )


def _stopsignal(node: Node, base: _Base) -> Instruction:
    _flags(node, ())
    return StopSignalInstruction(**base, signal=_exactly_one(node))


def _user(node: Node, base: _Base) -> Instruction:
    _flags(node, ())
    return UserInstruction(**base, user=_exactly_one(node))


def _workdir(node: Node, base: _Base) -> Instruction:
    _flags(node, ())
    return WorkdirInstruction(**base, path=_exactly_one(node))


def _volume(node: Node, base: _Base) -> Instruction:
    _flags(node, ())
    _at_least_one(node)
    volumes = tuple(v.strip() for v in node.args)
    if any(not v for v in volumes):
        raise _Invalid("VOLUME specified can not be an empty string")
    return VolumeInstruction(**base, volumes=volumes)


def _maintainer(node: Node, base: _Base) -> Instruction:
    _flags(node, ())
    return MaintainerInstruction(**base, maintainer=_exactly_one(node))


@functools.cache
def _onbuild_prefix() -> re.Pattern[str]:
    return re.compile(r"^\s*ONBUILD\s*", re.IGNORECASE)


def _onbuild(node: Node, base: _Base) -> Instruction:
    _flags(node, ())
    if node.sub is None:
        raise _Invalid("ONBUILD requires at least one argument")
    trigger_name = node.sub.name.upper()
    if trigger_name == "ONBUILD":
        raise _Invalid("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", node.sub.command)
    if trigger_name in ("MAINTAINER", "FROM"):
        raise _Invalid(f"{trigger_name} isn't allowed as an ONBUILD trigger", node.sub.command)
    trigger = _parse_node(node.sub, base["location"])
    expression = _onbuild_prefix().sub("", node.original, count=1)
    for doc in node.heredocs:
        expression += "\n" + doc.content + doc.name
    return OnbuildInstruction(**base, expression=expression, trigger=trigger)


_PARSERS: dict[str, Callable[[Node, _Base], Instruction]] = {
    "add": _add,
    "arg": _arg,
    "cmd": _cmd,
    "copy": _copy,
    "entrypoint": _entrypoint,
    "env": _env,
    "expose": _expose,
    "from": _from,
    "healthcheck": _healthcheck,
    "label": _label,
    "maintainer": _maintainer,
    "onbuild": _onbuild,
    "run": _run,
    "shell": _shell,
    "stopsignal": _stopsignal,
    "user": _user,
    "volume": _volume,
    "workdir": _workdir,
}
