"""Dockerfile stages -> build graph, as BuildKit's dockerfile2llb does.

The input is the typed instructions of `instructions` (flags and arguments are parsed
there, once); this module expands their variables and turns them into ops.

Each stage has a state: the op that makes its root filesystem, and the image config
(Env, Cmd, User, ...) and history that travel with it. Only the target stage and the
stages it needs are converted: others are never looked at beyond their names.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ocibuild import entitlements
from ocibuild.build_sources import context_key
from ocibuild.errors import OcibuildError
from ocibuild.frontend.dockerfile import instructions as ins
from ocibuild.frontend.dockerfile import parser as _parser
from ocibuild.frontend.dockerfile.convert_flags import parse_chmod
from ocibuild.frontend.dockerfile.convert_heredoc import expand_heredoc
from ocibuild.frontend.dockerfile.errors import DockerfileError
from ocibuild.frontend.dockerfile.git_add import git_source
from ocibuild.frontend.dockerfile.instructions import parse_instruction
from ocibuild.frontend.dockerfile.mounts import parse_mount
from ocibuild.frontend.dockerfile.parser import chomp_heredoc
from ocibuild.frontend.dockerfile.shell import ShellLex
from ocibuild.graph import (
    ContextSource,
    CopyOp,
    ExecOp,
    GitSource,
    HttpSource,
    ImageSource,
    InlineSource,
    MkdirOp,
    Mount,
    Op,
    ScratchSource,
)
from ocibuild.graph.ops import url_file_name
from ocibuild.oci.config import History, ImageConfig
from ocibuild.oci.platform import Platform
from ocibuild.oci.platform import host as host_platform
from ocibuild.source_location import SourceLocation

DEFAULT_SHELL = ("/bin/sh", "-c")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HISTORY_COMMENT = "buildkit.dockerfile.v0"
LAYER_COMMANDS = frozenset({"RUN", "COPY", "ADD", "WORKDIR"})
HEREDOC_PIPES = "/dev/pipes"  # where a RUN here-document with a shebang is mounted

# (manifest digest, config) of an image reference for a platform
ImageResolver = Callable[[str, Platform], tuple[str, ImageConfig]]


@dataclass(frozen=True)
class HistoryStep:
    """A history entry this build adds; `op` is the op whose layer it describes (the
    entry is an empty layer when `op` is None or the op changed nothing)."""

    created_by: str
    op: Op | None = None
    comment: str = HISTORY_COMMENT


@dataclass
class StageState:
    """A stage as converted so far: its op, image config and history."""

    name: str  # as written after AS, lower case; "" if none
    index: int
    op: Op
    config: dict[str, Any]  # the OCI config section
    platform: Platform
    base_history: tuple[History, ...] = ()
    history: list[HistoryStep] = field(default_factory=list)
    author: str = ""
    args: dict[str, str] = field(default_factory=dict)  # ARGs in scope
    shell: tuple[str, ...] = DEFAULT_SHELL
    cmd_set: bool = False

    def env_map(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.config.get("Env") or ():
            k, _, v = item.partition("=")
            out[k] = v
        return out

    def expansion_env(self) -> dict[str, str]:
        return {**self.args, **self.env_map()}


@dataclass
class BuildInputs:
    """What a build is asked for, beyond the Dockerfile."""

    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    platform: Platform | None = None  # target platform (default: the host)
    context_excludes: tuple[str, ...] = ()  # .dockerignore patterns
    labels: dict[str, str] = field(default_factory=dict)
    # --build-context names (lower case): local directories, and images the resolver
    # knows; either kind hides a stage or image of the same name, as in BuildKit
    context_dirs: frozenset[str] = frozenset()
    context_images: frozenset[str] = frozenset()
    # the network mode of a RUN without --network (or with --network=default), as
    # BuildKit's forced network mode; and the entitlements granted (--allow)
    network: str = "default"
    allow: frozenset[str] = frozenset()
    # every RUN's --add-host lines, /dev/shm size (0: default) and --ulimit values, as
    # ocibuild.step_options parses them
    extra_hosts: tuple[tuple[str, str], ...] = ()
    shm_size: int = 0
    ulimits: tuple[tuple[str, int, int], ...] = ()


@dataclass
class Conversion:
    """A Dockerfile as a graph: the target stage, step names and warnings."""

    target: StageState
    names: dict[str, str]  # op digest -> "[stage 2/3] RUN ..." for progress
    stages: dict[int, StageState]  # the converted stages (target and what it needs)
    warnings: list[str]
    stage_of_op: dict[str, str] = field(default_factory=dict)  # op digest -> stage name


def _go_quote_list(items: Sequence[str]) -> str:
    return "[" + " ".join(json.dumps(i) for i in items) + "]"


class _Stage:
    def __init__(self, index: int, from_: ins.FromInstruction) -> None:
        self.index = index
        self.from_ = from_
        self.instructions: list[ins.Instruction] = []
        self.base = from_.base
        self.name = from_.stage_name or ""
        self.platform_flag = from_.platform or ""

    @property
    def label(self) -> str:
        return self.name or f"stage-{self.index}"


@dataclass
class _Dispatch:
    """One stage being converted (as BuildKit's dispatchState): its state so far and how
    its steps are numbered ("[stage 2/5]")."""

    state: StageState
    stage: _Stage
    prefix: str
    total: int
    step: int = 1  # the number of the last step that makes a layer (FROM is 1)

    def step_name(self, text: str) -> str:
        head = f"{self.prefix} {self.step}/{self.total}" if self.prefix \
            else f"{self.step}/{self.total}"
        return f"[{head}] {text}"


class Converter:
    def __init__(self, ast: _parser.AST, inputs: BuildInputs, resolve_image: ImageResolver,
                 ) -> None:
        self.ast = ast
        self.inputs = inputs
        self.resolve_image = resolve_image
        self.lex = ShellLex(ast.escape)
        self.target_platform = inputs.platform or host_platform()
        self.build_platform = host_platform()
        self.context = ContextSource(excludes=tuple(inputs.context_excludes))
        self.names: dict[str, str] = {}
        self.stage_of_op: dict[str, str] = {}
        self.warnings: list[str] = list(ast.warnings)
        self.used_args: set[str] = set()
        self.global_args: dict[str, str] = {}
        self.stages: list[_Stage] = []
        self.done: dict[int, StageState] = {}
        self.in_progress: set[int] = set()
        self._name_order: dict[str, int] = {}
        self._check_syntax()

    def _check_syntax(self) -> None:
        """One warning when the build names a frontend image other than the Dockerfile
        syntax this frontend implements (the BUILDKIT_SYNTAX build argument first, as
        BuildKit reads it, then `# syntax=`)."""
        where, syntax = "BUILDKIT_SYNTAX", self.inputs.build_args.get("BUILDKIT_SYNTAX", "")
        if "BUILDKIT_SYNTAX" in self.inputs.build_args:
            self.used_args.add("BUILDKIT_SYNTAX")
        syntax = syntax.strip().split(" ", 1)[0]
        if not syntax:
            where, syntax = "# syntax", self.ast.directive("syntax") or ""
        if syntax and not is_builtin_syntax(syntax):
            self.warnings.append(f"[Warning] {where}={syntax} names a frontend ocibuild "
                                 "cannot run: the built-in Dockerfile frontend is used")

    @property
    def _stage_order(self) -> dict[str, int]:
        return {s.label: s.index for s in self.stages}

    # -- errors --------------------------------------------------------------------------
    def error(self, inst: ins.Instruction, message: str) -> DockerfileError:
        loc = inst.location
        return self.ast.error(message, loc.start_line, loc.column, loc.end_line)

    def _location(self, inst: ins.Instruction) -> SourceLocation:
        """Where `inst` was written, for the excerpt under its step's error."""
        loc = inst.location
        return SourceLocation(self.ast.filename, loc.start_line,
                              max(loc.end_line, loc.start_line), self.ast.lines)

    def expand(self, inst: ins.Instruction, word: str, env: Mapping[str, str]) -> str:
        try:
            return self.lex.expand_word(word, env)
        except OcibuildError as exc:
            raise self.error(inst, exc.message) from None

    # -- the whole file --------------------------------------------------------------------
    def automatic_args(self) -> dict[str, str]:
        t, b = self.target_platform, self.build_platform
        return {
            "TARGETPLATFORM": str(t), "TARGETOS": t.os, "TARGETARCH": t.architecture,
            "TARGETVARIANT": t.variant, "BUILDPLATFORM": str(b), "BUILDOS": b.os,
            "BUILDARCH": b.architecture, "BUILDVARIANT": b.variant,
        }

    def split_stages(self) -> None:
        meta_env = dict(self.automatic_args())
        current: _Stage | None = None
        for node in self.ast.nodes:
            # every instruction of every stage is checked first, as BuildKit does: a
            # misspelt flag or instruction fails the build with its position
            inst = parse_instruction(node, self.ast)
            if isinstance(inst, ins.FromInstruction):
                current = _Stage(len(self.stages), inst)
                self.stages.append(current)
            elif current is not None:
                current.instructions.append(inst)
            elif isinstance(inst, ins.ArgInstruction):
                for arg in inst.args:
                    key, value = arg.key, self._arg_value(inst, arg, meta_env)
                    if value is not None:
                        meta_env[key] = value
                        self.global_args[key] = value
                    else:
                        self.global_args.setdefault(key, "")
            else:
                raise self.error(inst, f"{node.command.upper()} before the first FROM: "
                                 "only ARG may come before FROM")
        if not self.stages:
            raise DockerfileError("the Dockerfile has no FROM instruction",
                                  filename=self.ast.filename)

    def _meta_env(self) -> dict[str, str]:
        return {**self.automatic_args(), **self.global_args}

    def find_stage(self, ref: str) -> _Stage | None:
        low = ref.lower()
        for st in self.stages:
            if st.name and st.name == low:
                return st
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None

    def convert(self) -> Conversion:
        self.split_stages()
        if self.inputs.target:
            target = self.find_stage(self.inputs.target)
            if target is None or not target.name:
                raise OcibuildError(f"target stage {self.inputs.target!r} could not be found")
        else:
            target = self.stages[-1]
        state = self.stage_state(target)
        unused = sorted(set(self.inputs.build_args) - self.used_args
                        - set(self.automatic_args()))
        if unused:
            self.warnings.append(
                f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        for key, value in self.inputs.labels.items():
            state.config.setdefault("Labels", {})[key] = value
        return Conversion(state, self.names, dict(self.done), self.warnings, self.stage_of_op)

    # -- one stage -------------------------------------------------------------------------
    def stage_state(self, stage: _Stage) -> StageState:
        if stage.index in self.done:
            return self.done[stage.index]
        if stage.index in self.in_progress:
            raise self.error(stage.from_, f"circular dependency on stage {stage.label}")
        self.in_progress.add(stage.index)
        total = 1 + sum(1 for i in stage.instructions if i.name in LAYER_COMMANDS)
        prefix = stage.label if len(self.stages) > 1 else ""
        state = self._from(stage, prefix, total)
        dispatch = _Dispatch(state, stage, prefix, total)
        for inst in stage.instructions:
            self.dispatch(dispatch, inst)
        self.in_progress.discard(stage.index)
        self.done[stage.index] = state
        return state

    def _step_name(self, prefix: str, n: int, total: int, text: str) -> str:
        head = f"{prefix} {n}/{total}" if prefix else f"{n}/{total}"
        return f"[{head}] {text}"

    def _name(self, op: Op, name: str, stage: str) -> None:
        # an op shared by stages (the same FROM) is named after the first in the file
        order = self._stage_order.get(stage, len(self.stages))
        known = self._name_order.get(op.digest)
        if known is None or order < known:
            self._name_order[op.digest] = order
            self.names[op.digest] = name
            self.stage_of_op[op.digest] = stage

    def _from(self, stage: _Stage, prefix: str, total: int) -> StageState:
        inst = stage.from_
        meta = self._meta_env()
        base = self.expand(inst, stage.base, meta)
        platform_text = self.expand(inst, stage.platform_flag, meta) if stage.platform_flag \
            else ""
        try:
            platform = Platform.parse(platform_text) if platform_text else self.target_platform
        except ValueError as exc:
            raise self.error(inst, str(exc)) from None
        key = context_key(base)
        named = key in self.inputs.context_dirs | self.inputs.context_images
        parent = self.find_stage(base) if base and not base.isdigit() and not named else None
        if key in self.inputs.context_dirs:
            return self._from_directory(stage, base, prefix, total, platform)
        if parent is not None and parent.index < stage.index:
            ps = self.stage_state(parent)
            state = StageState(
                name=stage.name, index=stage.index, op=ps.op, config=json.loads(
                    json.dumps(ps.config)), platform=ps.platform, base_history=ps.base_history,
                history=list(ps.history), author=ps.author, shell=ps.shell)
            # the parent stage's own ONBUILD triggers run here and are not carried on, as
            # BuildKit's initOnBuildTriggers does for a stage built FROM another
            self._run_triggers(state, stage, inst, base, prefix, total)
            return state
        if base.lower() == "scratch":
            op: Op = ScratchSource(description=self._step_name(prefix, 1, total, "FROM scratch"))
            config: dict[str, Any] = {"Env": [DEFAULT_PATH]}
            self._name(op, self._step_name(prefix, 1, total, "FROM scratch"), stage.label)
            return StageState(stage.name, stage.index, op, config, platform)
        if not base:
            raise self.error(inst, "FROM needs an image name")
        try:
            digest, image_config = self.resolve_image(base, platform)
        except OcibuildError as exc:
            raise self.error(inst, exc.message) from None
        op = ImageSource(ref=base, manifest_digest=digest, platform=str(platform))
        self._name(op, self._step_name(prefix, 1, total, f"FROM {base}"), stage.label)
        config = json.loads(json.dumps(image_config.config))
        state = StageState(stage.name, stage.index, op, config, image_config.platform
                           if image_config.architecture else platform,
                           base_history=image_config.history, author=image_config.author)
        if "Shell" in config:
            state.shell = tuple(config["Shell"])
        self._run_triggers(state, stage, inst, base, prefix, total)
        return state

    def _run_triggers(self, state: StageState, stage: _Stage, from_: ins.FromInstruction,
                      base: str, prefix: str, total: int) -> None:
        """Run the base's ONBUILD triggers in the new stage, which does not keep them."""
        dispatch = _Dispatch(state, stage, prefix, total)
        for trigger in state.config.pop("OnBuild", None) or []:
            for tinst in self._triggers(from_, base, trigger):
                self.dispatch(dispatch, tinst, trigger=True)

    def _triggers(self, from_: ins.FromInstruction, base: str, trigger: str
                  ) -> list[ins.Instruction]:
        """An ONBUILD trigger of the base image, as instructions placed at the FROM line."""
        def failed(exc: DockerfileError) -> DockerfileError:
            return self.error(from_, f"ONBUILD trigger {trigger!r} of {base}: {exc.reason}")

        try:
            sub = _parser.parse(trigger, self.ast.filename)
        except DockerfileError as exc:
            raise failed(exc) from None
        out = []
        for tnode in sub.nodes:
            if tnode.name in ("onbuild", "from", "maintainer"):
                raise self.error(from_, f"{tnode.name.upper()} isn't allowed as an "
                                 "ONBUILD trigger")
            try:
                tinst = parse_instruction(tnode, sub)
            except DockerfileError as exc:
                raise failed(exc) from None
            out.append(replace(tinst, location=replace(from_.location, column=tnode.column)))
        return out

    def _from_directory(self, stage: _Stage, name: str, prefix: str, total: int,
                        platform: Platform) -> StageState:
        """FROM a directory build context: its files are the root filesystem."""
        text = self._step_name(prefix, 1, total, f"FROM {name}")
        op = CopyOp(ScratchSource(description=text), ContextSource(name=context_key(name)),
                    (".",), "/")
        self._name(op, text, stage.label)
        return StageState(stage.name, stage.index, op, {"Env": [DEFAULT_PATH]}, platform)

    # -- instructions ----------------------------------------------------------------------
    def _arg_value(self, inst: ins.ArgInstruction, arg: ins.ArgSpec, env: Mapping[str, str]
                   ) -> str | None:
        """A build argument's value, or None when it has no default. As BuildKit: the
        name is never expanded, and the default is only expanded (with the ARGs before it
        in the same instruction in scope) when no --build-arg gives the value."""
        if arg.key in self.inputs.build_args:
            self.used_args.add(arg.key)
            return self.inputs.build_args[arg.key]
        return None if arg.default is None else self.expand(inst, arg.default, env)

    def dispatch(self, dispatch: _Dispatch, inst: ins.Instruction, trigger: bool = False
                 ) -> None:
        """Apply one instruction to its stage (an ONBUILD trigger, run at the FROM, takes
        no step number of its own)."""
        if inst.name in LAYER_COMMANDS and not trigger:
            dispatch.step += 1
        handler = _HANDLERS[type(inst)]
        handler(self, dispatch.state, inst, dispatch.step_name(_display(inst)),
                dispatch.stage.label)

    def _history(self, state: StageState, text: str, op: Op | None = None) -> None:
        state.history.append(HistoryStep(text, op))

    def _do_arg(self, state: StageState, inst: ins.ArgInstruction, step: str,
                label: str) -> None:
        shown: list[str] = []
        for arg in inst.args:
            key, value = arg.key, self._arg_value(inst, arg, state.expansion_env())
            if value is None:
                if key in self.global_args:
                    value = self.global_args[key]
                elif key in self.automatic_args():
                    value = self.automatic_args()[key]
            if value is None:
                state.args.setdefault(key, "")
                shown.append(key)
                continue
            state.args[key] = value
            shown.append(f"{key}={value}")
        self._history(state, "ARG " + " ".join(shown))

    def _do_env(self, state: StageState, inst: ins.EnvInstruction, step: str,
                label: str) -> None:
        # names and values are expanded first, all with the variables from before this
        # instruction (BuildKit's EnvCommand.Expand): `ENV a=2 b=$a` gives b the old $a
        env = state.expansion_env()
        pairs = [(self.expand(inst, p.key, env), self.expand(inst, p.value, env))
                 for p in inst.pairs]
        shown: list[str] = []
        for (key, value), pair in zip(pairs, inst.pairs, strict=True):
            if not key:
                raise self.error(inst, f"ENV name {pair.key!r} expands to an empty string")
            _set_env(state.config, key, value)
            shown.append(f"{key}={value}")
        self._history(state, "ENV " + " ".join(shown))

    def _do_label(self, state: StageState, inst: ins.LabelInstruction, step: str,
                  label: str) -> None:
        env = state.expansion_env()
        shown: list[str] = []
        labels = state.config.setdefault("Labels", {})
        for pair in inst.pairs:
            key = self.expand(inst, pair.key, env)
            value = self.expand(inst, pair.value, env)
            labels[key] = value
            shown.append(f"{key}={value}")
        self._history(state, "LABEL " + " ".join(shown))

    def _do_maintainer(self, state: StageState, inst: ins.MaintainerInstruction, step: str,
                       label: str) -> None:
        state.author = inst.maintainer
        self._history(state, "MAINTAINER " + state.author)

    def _command(self, state: StageState, inst: ins.RunInstruction | ins.CmdInstruction
                 | ins.EntrypointInstruction) -> list[str]:
        if inst.shell_form:  # one string (none for a bare CMD: BuildKit runs "")
            return [*state.shell, " ".join(inst.command)]
        return list(inst.command)

    def _do_cmd(self, state: StageState, inst: ins.CmdInstruction, step: str,
                label: str) -> None:
        cmd = self._command(state, inst)
        state.config["Cmd"] = cmd
        state.cmd_set = True
        self._history(state, f"CMD {_go_quote_list(cmd)}")

    def _do_entrypoint(self, state: StageState, inst: ins.EntrypointInstruction, step: str,
                       label: str) -> None:
        ep = self._command(state, inst)
        state.config["Entrypoint"] = ep
        if not state.cmd_set:
            state.config.pop("Cmd", None)
        self._history(state, f"ENTRYPOINT {_go_quote_list(ep)}")

    def _do_shell(self, state: StageState, inst: ins.ShellInstruction, step: str,
                  label: str) -> None:
        state.shell = inst.shell
        state.config["Shell"] = list(inst.shell)
        self._history(state, f"SHELL {_go_quote_list(inst.shell)}")

    def _do_user(self, state: StageState, inst: ins.UserInstruction, step: str,
                 label: str) -> None:
        user = self.expand(inst, inst.user, state.expansion_env())
        state.config["User"] = user
        self._history(state, f"USER {user}")

    def _do_expose(self, state: StageState, inst: ins.ExposeInstruction, step: str,
                   label: str) -> None:
        env = state.expansion_env()
        ports = state.config.setdefault("ExposedPorts", {})
        added: list[str] = []
        for word in inst.ports:
            try:
                items = self.lex.expand_words(word, env)
            except OcibuildError as exc:
                raise self.error(inst, exc.message) from None
            for item in items:
                # checked once expanded, a range exposes each of its ports (BuildKit)
                try:
                    spec = ins.parse_port_spec(item)
                except ValueError as exc:
                    raise ins.error_at(inst.location, str(exc), word, ast=self.ast) from None
                for number in range(spec.start, spec.end + 1):
                    key = f"{number}/{spec.protocol}"
                    ports[key] = {}
                    added.append(key)
        self._history(state, "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in sorted(added)) + "]")

    def _do_volume(self, state: StageState, inst: ins.VolumeInstruction, step: str,
                   label: str) -> None:
        env = state.expansion_env()
        volumes = state.config.setdefault("Volumes", {})
        added = [self.expand(inst, w, env) for w in inst.volumes]
        for v in added:
            if not v.strip():
                raise self.error(inst, "VOLUME specified can not be an empty string")
            volumes[v] = {}
        self._history(state, "VOLUME [" + " ".join(added) + "]")

    def _do_stopsignal(self, state: StageState, inst: ins.StopSignalInstruction, step: str,
                       label: str) -> None:
        sig = self.expand(inst, inst.signal, state.expansion_env())
        state.config["StopSignal"] = sig
        self._history(state, f"STOPSIGNAL {sig}")

    def _do_healthcheck(self, state: StageState, inst: ins.HealthcheckInstruction,
                        step: str, label: str) -> None:
        check: dict[str, Any] = {"Test": list(inst.test)}
        # zero is "not set": BuildKit's image config leaves those fields out
        for key, value in (("Interval", inst.interval_ns), ("Timeout", inst.timeout_ns),
                           ("StartPeriod", inst.start_period_ns),
                           ("StartInterval", inst.start_interval_ns),
                           ("Retries", inst.retries)):
            if value:
                check[key] = value
        state.config["Healthcheck"] = check
        self._history(state, f"HEALTHCHECK {json.dumps(check, sort_keys=True)}")

    def _do_onbuild(self, state: StageState, inst: ins.OnbuildInstruction, step: str,
                    label: str) -> None:
        # stored as written (trailing blanks and here-document bodies kept) and, as in
        # BuildKit's dispatchOnbuild, without a history entry
        state.config.setdefault("OnBuild", []).append(inst.expression)

    def _do_workdir(self, state: StageState, inst: ins.WorkdirInstruction, step: str,
                    label: str) -> None:
        path = self.expand(inst, inst.path, state.expansion_env())
        wd = normalize_workdir(state.config.get("WorkingDir") or "", path)
        state.config["WorkingDir"] = wd
        op: Op | None = None
        if wd != "/":
            op = MkdirOp(state.op, _clean_path(wd), 0o755,
                         state.config.get("User", ""), location=self._location(inst))
            state.op = op
            self._name(op, step, label)
        self._history(state, f"WORKDIR {wd}", op)

    def _do_run(self, state: StageState, inst: ins.RunInstruction, step: str,
                label: str) -> None:
        expansion = state.expansion_env()
        mounts: list[Mount] = []
        ssh_agents = 0  # ssh mounts without a target go to ssh_agent.0, .1, ...
        for written in inst.mounts:
            try:
                spec = parse_mount(written.raw, lambda w: self.lex.expand_word(w, expansion))
            except (ValueError, OcibuildError) as exc:
                raise self.error(inst, f"--mount {written.raw}: {exc}") from None
            mounts.append(self._mount(inst, spec, ssh_agents))
            if spec.type == "ssh" and not spec.target:
                ssh_agents += 1
        if inst.heredocs:
            args, script = self._heredoc_run(state, inst)
            if script is not None:
                mounts.append(script)
            if _is_lone_heredoc(inst):  # BuildKit names the step with the document's start
                step += f" ({_summarize_heredoc(inst.heredocs[0].content)})"
        else:
            args = self._command(state, inst)
        env_map = state.env_map()
        run_args = {k: v for k, v in state.args.items() if k not in env_map}
        env = [f"{k}={v}" for k, v in run_args.items()] + list(state.config.get("Env") or ())
        network = self.inputs.network if inst.network == "default" else inst.network
        self._check_entitlements(inst, network)
        op = ExecOp(state.op, tuple(args), env=tuple(env),
                    cwd=_cwd(state),
                    user=state.config.get("User", ""), network=network,
                    mounts=tuple(mounts), security=inst.security,
                    extra_hosts=self.inputs.extra_hosts, shm_size=self.inputs.shm_size,
                    ulimits=self.inputs.ulimits, location=self._location(inst))
        state.op = op
        self._name(op, step, label)
        arg_prefix = ""
        if run_args:
            arg_prefix = f"|{len(run_args)} " + " ".join(
                f"{k}={v}" for k, v in sorted(run_args.items())) + " "
        self._history(state, f"RUN {arg_prefix}{' '.join(args)} # buildkit", op)

    def _check_entitlements(self, inst: ins.RunInstruction, network: str) -> None:
        """Fail at the RUN (at its flag) when it needs an entitlement the build was not
        granted; before any step runs, as BuildKit validates the whole graph first."""
        for flag, entitlement in entitlements.needed(network, inst.security):
            if entitlement in self.inputs.allow:
                continue
            if flag == "--network=host" and inst.network != "host":  # the build's mode
                raise self.error(inst, entitlements.not_allowed(flag, entitlement))
            message = entitlements.not_allowed(f"RUN {flag}", entitlement)
            raise ins.error_at(inst.location, message, flag.partition("=")[0], ast=self.ast)

    def _heredoc_run(self, state: StageState, inst: ins.RunInstruction
                     ) -> tuple[list[str], Mount | None]:
        """The command of a RUN with here-documents, and the mount of its script when
        the command is one here-document starting with `#!`: as BuildKit's dispatchRun,
        that document is written to /dev/pipes/NAME (0755, a read-only mount of the
        step) and the shell runs the file, so its interpreter runs it."""
        doc = inst.heredocs[0]
        if doc.chomp:
            doc = replace(doc, content=chomp_heredoc(doc.content))
        first = " ".join(inst.command)
        if _is_lone_heredoc(inst):
            if doc.content.startswith("#!"):
                source = InlineSource(files=((doc.name, doc.content),), mode=0o755)
                mount = Mount(type="bind", target=HEREDOC_PIPES, source=source)
                return [*state.shell, posixpath.join(HEREDOC_PIPES, doc.name)], mount
            return [*state.shell, doc.content], None
        # a command reading the here-document on its standard input
        script = f"{first}\n{doc.content}{doc.name}\n"
        return [*state.shell, script], None

    def _mount(self, inst: ins.Instruction, spec: Any, ssh_agents: int) -> Mount:
        source: Op | None = None
        if spec.type == "bind" or (spec.type == "cache" and spec.from_):
            source = self._source_state(inst, spec.from_) if spec.from_ else self.context
        target, mount_id = spec.target, spec.id
        if spec.type == "secret":
            mount_id = mount_id or posixpath.basename(target)
            if not mount_id:
                raise self.error(inst, "--mount=type=secret needs id= or target=")
            if not target and not spec.env:
                target = f"/run/secrets/{mount_id}"
        elif spec.type == "ssh":
            mount_id = mount_id or "default"
            if not target:
                target = f"/run/buildkit/ssh_agent.{ssh_agents}"
        return Mount(type=spec.type, target=target, source=source,
                     source_path=spec.source or "/", readonly=spec.readonly,
                     id=mount_id,
                     sharing=spec.sharing or "shared", mode=spec.mode, uid=spec.uid,
                     gid=spec.gid, required=spec.required, env=spec.env or "", size=spec.size)

    def _source_state(self, inst: ins.Instruction, ref: str) -> Op:
        """The filesystem `--from=` names: a build context, a stage (name or index) or an
        image."""
        key = context_key(ref)
        if key in self.inputs.context_dirs:
            return ContextSource(name=key)
        stage = None if key in self.inputs.context_images else self.find_stage(ref)
        if stage is not None:
            return self.stage_state(stage).op
        try:
            digest, _ = self.resolve_image(ref, self.target_platform)
        except OcibuildError as exc:
            raise self.error(inst, exc.message) from None
        op = ImageSource(ref=ref, manifest_digest=digest, platform=str(self.target_platform))
        self._name(op, f"[internal] load image {ref}", "")
        return op

    def _do_copy(self, state: StageState, inst: ins.CopyInstruction, step: str,
                 label: str) -> None:
        self._copy(state, inst, step, label, from_ref=inst.from_ or "",
                   parents=inst.parents)

    def _do_add(self, state: StageState, inst: ins.AddInstruction, step: str,
                label: str) -> None:
        self._copy(state, inst, step, label, checksum=inst.checksum or "")

    def _copy(self, state: StageState, inst: ins.CopyInstruction | ins.AddInstruction,
              step: str, label: str, from_ref: str = "", parents: bool = False,
              checksum: str = "") -> None:
        add = isinstance(inst, ins.AddInstruction)
        env = state.expansion_env()
        inline: list[tuple[str, str]] = []
        for doc in inst.source_contents:
            data = doc.data
            if doc.expand:
                try:
                    data = expand_heredoc(data, self.lex, env)
                except OcibuildError as exc:
                    raise self.error(inst, exc.message) from None
            inline.append((doc.path, data))
        sources = [self.expand(inst, w, env) for w in inst.sources]
        dest = self.expand(inst, inst.dest, env)
        # BuildKit's history names the paths, then each here-document as <<NAME
        words = [*sources, *(f"<<{name}" for name, _ in inline), dest]
        chown = self.expand(inst, inst.chown or "", env)
        chmod = self.expand(inst, inst.chmod or "", env)
        if chmod:
            try:
                parse_chmod(chmod)
            except OcibuildError as exc:
                raise self.error(inst, exc.message) from None
        source: Op = self.context
        if from_ref:
            source = self._source_state(inst, self.expand(inst, from_ref, env))
        contents: InlineSource | None = None
        if inline and not sources:
            source = InlineSource(files=tuple(inline))
            sources = [name for name, _ in inline]
            add = False  # a here-document is never an archive to extract
        else:
            if inline:  # paths and here-documents: one copy, the documents after the paths
                contents = InlineSource(files=tuple(inline))
            gits = [] if from_ref else [g for s in sources
                                        if (g := self._git(inst, s, add, checksum))]
            urls = [s for s in sources if s.startswith(("http://", "https://"))]
            if gits:
                if len(sources) != 1:
                    raise self.error(inst, f"{inst.name} of a git URL takes exactly one source")
                source, sources, add = gits[0], ["."], False  # a tree, never extracted
            elif urls:
                if len(sources) != 1:
                    raise self.error(inst, "ADD of a URL takes exactly one source")
                url = urls[0]
                filename = url_file_name(url)
                source = HttpSource(url=url, checksum=checksum, filename=filename)
                sources = [filename]
                add = False  # a download is never extracted, even a tar (BuildKit)
            elif checksum:
                raise self.error(inst, "ADD --checksum is only supported with HTTP(S) sources")
        if len(words) > 2 and not dest.endswith("/"):
            raise self.error(inst, f"When using {inst.name} with more than one "
                             "source file, the destination must be a directory and end "
                             "with a /")
        op = CopyOp(state.op, source, tuple(sources), dest,
                    cwd=_cwd(state), chown=chown, chmod=chmod,
                    link=inst.link, excludes=inst.excludes, parents=parents, add=add,
                    user=state.config.get("User", ""), contents=contents,
                    location=self._location(inst))
        state.op = op
        self._name(op, step, label)
        self._history(state, f"{inst.name} {' '.join(words)} # buildkit", op)

    def _git(self, inst: ins.CopyInstruction | ins.AddInstruction, word: str, add: bool,
             checksum: str) -> GitSource | None:
        try:
            return git_source(word, add=add, checksum=checksum,
                              keep_git_dir=getattr(inst, "keep_git_dir", None))
        except OcibuildError as exc:
            raise self.error(inst, exc.message) from None


# instruction type -> its handler (FROM starts a stage: Converter._from)
_HANDLERS: dict[type[ins.Instruction], Callable[..., None]] = {
    ins.AddInstruction: Converter._do_add,
    ins.ArgInstruction: Converter._do_arg,
    ins.CmdInstruction: Converter._do_cmd,
    ins.CopyInstruction: Converter._do_copy,
    ins.EntrypointInstruction: Converter._do_entrypoint,
    ins.EnvInstruction: Converter._do_env,
    ins.ExposeInstruction: Converter._do_expose,
    ins.HealthcheckInstruction: Converter._do_healthcheck,
    ins.LabelInstruction: Converter._do_label,
    ins.MaintainerInstruction: Converter._do_maintainer,
    ins.OnbuildInstruction: Converter._do_onbuild,
    ins.RunInstruction: Converter._do_run,
    ins.ShellInstruction: Converter._do_shell,
    ins.StopSignalInstruction: Converter._do_stopsignal,
    ins.UserInstruction: Converter._do_user,
    ins.VolumeInstruction: Converter._do_volume,
    ins.WorkdirInstruction: Converter._do_workdir,
}


def _is_lone_heredoc(inst: ins.RunInstruction) -> bool:
    """Whether the RUN's command is one here-document alone (`RUN <<EOT`, `<<-"EOT"`),
    as BuildKit's dispatchRun tells with MustParseHeredoc."""
    try:
        return _parser.parse_heredoc(" ".join(inst.command).strip()) is not None
    except ValueError:
        return False


def _summarize_heredoc(content: str) -> str:
    """A here-document's first line, with "..." when more follow (BuildKit's summary)."""
    lines = content.strip().replace("\r\n", "\n").split("\n")
    return lines[0] + ("..." if len(lines) > 1 else "")


def is_builtin_syntax(ref: str) -> bool:
    """Whether a `# syntax=` image is the Dockerfile syntax the built-in frontend speaks:
    docker/dockerfile (or docker/dockerfile-upstream), any tag or digest, or BuildKit's
    own name for it, dockerfile.v0. BuildKit would run that image; ocibuild runs no
    frontend images, and these need none; `dockerfile` is that frontend's own name
    (`ocibuild.frontend.registry`)."""
    name = ref.strip().split("@", 1)[0]
    if ":" in name.rpartition("/")[2]:
        name = name.rpartition(":")[0]
    for prefix in ("docker.io/", "index.docker.io/"):
        name = name.removeprefix(prefix)
    return name in ("docker/dockerfile", "docker/dockerfile-upstream", "dockerfile.v0",
                    "dockerfile")


def normalize_workdir(current: str, path: str) -> str:
    """The working directory after `WORKDIR path`, as BuildKit's NormalizeWorkdir makes
    it: an absolute path is kept as written (a trailing slash too), a relative one is
    joined to the current directory and cleaned."""
    parent = current or "/"
    if not posixpath.isabs(parent):
        parent = _clean_path(posixpath.join("/", parent))
    if not path:  # a WORKDIR that expands to nothing keeps the current one
        return parent
    if posixpath.isabs(path):
        return path
    return _clean_path(posixpath.join(parent, path))


def _cwd(state: StageState) -> str:
    """The directory RUN and COPY work in: WorkingDir as written, cleaned (the image
    keeps "/a/b/"; the steps' keys stay those of "/a/b")."""
    return _clean_path(state.config.get("WorkingDir") or "/")


def _clean_path(path: str) -> str:
    """Go's path.Clean of an absolute path (normpath keeps a leading "//")."""
    return "/" + posixpath.normpath(path).lstrip("/")


def _display(inst: ins.Instruction) -> str:
    """An instruction as progress shows it: its text on one line."""
    return " ".join(inst.original.split())


def _set_env(config: dict[str, Any], key: str, value: str) -> None:
    env = list(config.get("Env") or ())
    for i, item in enumerate(env):
        if item.partition("=")[0] == key:
            env[i] = f"{key}={value}"
            break
    else:
        env.append(f"{key}={value}")
    config["Env"] = env


def convert(ast: _parser.AST, inputs: BuildInputs, resolve_image: ImageResolver
            ) -> Conversion:
    """Turn a parsed Dockerfile into the target stage's state (its op and image config)."""
    return Converter(ast, inputs, resolve_image).convert()
