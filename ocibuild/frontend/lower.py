"""A graph API state (`ocibuild.graph.State`) -> ops and image config, for the solver.

This is to states what `dockerfile/convert.py` is to stages, and it hands the builder
the same thing: a `Conversion` (the target's op, config, history and platform, and a
name for every step). Each step is turned into the op its Dockerfile instruction
makes, with the same fields (a `run` is `RUN`'s `ExecOp`: the image's shell, the
step's variables before the image's `Env`, the working directory cleaned, the
build's network, hosts, shm size and ulimits), so a definition written either way
has the same cache keys, layers and config; only the history's text differs.

Contexts and OCI layouts are found on disk by the builder (`GraphSources`): the
directory the build reads first is the main context, named "context" as the
Dockerfile's own, so its cache keys are shared with a Dockerfile build.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ocibuild import entitlements
from ocibuild.errors import OcibuildError, UsageError
from ocibuild.frontend.dockerfile.convert import (
    DEFAULT_PATH,
    BuildInputs,
    Conversion,
    HistoryStep,
    ImageResolver,
    StageState,
    normalize_workdir,
)
from ocibuild.graph import (
    Context,
    ContextSource,
    CopyOp,
    ExecOp,
    GitRepository,
    GitSource,
    HttpFile,
    HttpSource,
    ImageSource,
    MkdirOp,
    Mount,
    Op,
    RunMount,
    ScratchSource,
    State,
)
from ocibuild.graph.ops import url_file_name
from ocibuild.graph.state import Base, Configure, Copy, Run, Step, Workdir
from ocibuild.oci.platform import Platform
from ocibuild.oci.platform import host as host_platform

HISTORY_COMMENT = "ocibuild.graph.v0"
LAYOUT_PREFIX = "oci-layout-"  # the build-context names of oci_layout() bases


@dataclass
class GraphSources:
    """The directories and layouts a state reads: `contexts` maps a context's path to
    its name ("context" for the main one, the first read), `layouts` maps (path, tag)
    to the build-context name it is resolved by."""

    contexts: dict[str, str] = field(default_factory=dict)
    main: Context | None = None
    layouts: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def of(cls, state: State, main: Context | None = None) -> GraphSources:
        found = cls()
        if main is not None:
            found._add_context(main)
        for item in _reachable(state):
            if isinstance(item, Context):
                found._add_context(item)
            elif item.kind == "layout":
                key = (item.ref, item.tag)
                found.layouts.setdefault(key, f"{LAYOUT_PREFIX}{len(found.layouts)}")
        return found

    def _add_context(self, ctx: Context) -> None:
        known = self.contexts.get(ctx.path)
        if known is None:
            name = "context" if not self.contexts else f"context-{len(self.contexts)}"
            self.contexts[ctx.path] = name
            if name == "context":
                self.main = ctx
            elif ctx.include or ctx.exclude:
                raise UsageError(f"context({ctx.path!r}): include and exclude apply only to "
                                 "the build's main context (the first one read)")
        elif known == "context" and self.main is not None and ctx != self.main \
                and ctx.patterns() != self.main.patterns():
            raise UsageError(f"context({ctx.path!r}) is read with two different "
                             "include/exclude lists")

    def build_contexts(self) -> list[str]:
        """`--build-context` values for the named contexts and the layouts."""
        out = [f"{name}={path}" for path, name in self.contexts.items() if name != "context"]
        out += [f"{name}=oci-layout://{path}" + (f":{tag}" if tag else "")
                for (path, tag), name in self.layouts.items()]
        return out


def _reachable(state: State) -> Iterator[Base | Context]:
    """Every base and context a state reads, depth first in step order."""
    seen: set[int] = set()
    stack = [state]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current.base
        later: list[State] = []
        for step in current.steps:
            sources: list[object] = []
            if isinstance(step, Copy):
                sources.append(step.source)
            elif isinstance(step, Run):
                sources += [m.source for m in step.mounts]
            for source in sources:
                if isinstance(source, Context):
                    yield source
                elif isinstance(source, State):
                    later.append(source)
        stack.extend(reversed(later))


class _Lowering:
    def __init__(self, inputs: BuildInputs, resolve: ImageResolver,
                 sources: GraphSources) -> None:
        self.inputs = inputs
        self.resolve = resolve
        self.sources = sources
        self.target_platform = inputs.platform or host_platform()
        self.names: dict[str, str] = {}
        self.done: dict[State, StageState] = {}

    def state(self, state: State) -> StageState:
        known = self.done.get(state)
        if known is not None:
            return known
        lowered = self._base(state.base)
        for step in state.steps:
            self._step(lowered, step)
        self.done[state] = lowered
        return lowered

    def _name(self, op: Op, text: str) -> None:
        self.names.setdefault(op.digest, " ".join(text.split()))

    def _base(self, base: Base) -> StageState:
        try:
            platform = Platform.parse(base.platform) if base.platform else self.target_platform
        except ValueError as exc:
            raise UsageError(f"platform: {exc}") from None
        if base.kind == "scratch":
            op: Op = ScratchSource(description="FROM scratch")
            self._name(op, "FROM scratch")
            return StageState("", 0, op, {"Env": [DEFAULT_PATH]}, platform)
        ref = base.ref if base.kind == "image" else self.sources.layouts[(base.ref, base.tag)]
        shown = base.ref if base.kind == "image" else f"oci-layout://{base.ref}"
        try:
            digest, image_config = self.resolve(ref, platform)
        except OcibuildError as exc:  # the same error (a RegistryError keeps its status)
            exc.args = (f"image({shown!r}): {exc.message}", *exc.args[1:])
            raise
        op = ImageSource(ref=ref, manifest_digest=digest, platform=str(platform))
        self._name(op, f"FROM {shown}")
        config = json.loads(json.dumps(image_config.config))
        config.pop("OnBuild", None)  # triggers are a Dockerfile's; a state runs none
        state = StageState("", 0, op, config, image_config.platform
                           if image_config.architecture else platform,
                           base_history=image_config.history, author=image_config.author)
        if "Shell" in config:
            state.shell = tuple(config["Shell"])
        return state

    def _step(self, state: StageState, step: Step) -> None:
        if isinstance(step, Run):
            self._run(state, step)
        elif isinstance(step, Copy):
            self._copy(state, step)
        elif isinstance(step, Workdir):
            self._workdir(state, step)
        else:
            _configure(state, step)

    def _history(self, state: StageState, text: str, op: Op | None) -> None:
        state.history.append(HistoryStep(text, op, comment=HISTORY_COMMENT))
        if op is not None:
            self._name(op, text)

    def _command(self, state: StageState, command: str | tuple[str, ...]) -> list[str]:
        return [*state.shell, command] if isinstance(command, str) else list(command)

    def _run(self, state: StageState, step: Run) -> None:
        args = self._command(state, step.args)
        env_map = state.env_map()
        env = [f"{k}={v}" for k, v in step.env if k not in env_map]
        env += list(state.config.get("Env") or ())
        network = self.inputs.network if step.network == "default" else step.network
        for flag, entitlement in entitlements.needed(network, step.security):
            if entitlement not in self.inputs.allow:
                raise UsageError(entitlements.not_allowed(f"run({' '.join(args)!r}) {flag}",
                                                          entitlement))
        op = ExecOp(state.op, tuple(args), env=tuple(env), cwd=_cwd(state),
                    user=state.config.get("User", ""), network=network,
                    mounts=self._mounts(step.mounts), security=step.security,
                    extra_hosts=self.inputs.extra_hosts, shm_size=self.inputs.shm_size,
                    ulimits=self.inputs.ulimits)
        state.op = op
        self._history(state, f"RUN {_written(step.args)}", op)

    def _mounts(self, mounts: tuple[RunMount, ...]) -> tuple[Mount, ...]:
        out: list[Mount] = []
        agents = 0
        for m in mounts:
            target = m.target
            if m.type == "ssh" and not target:
                target, agents = f"/run/buildkit/ssh_agent.{agents}", agents + 1
            source = None if m.source is None else self._source(m.source)
            out.append(Mount(type=m.type, target=target, source=source,
                             source_path=m.source_path, readonly=m.readonly, id=m.id,
                             sharing=m.sharing, mode=m.mode, uid=m.uid, gid=m.gid,
                             required=m.required, env=m.env, size=m.size))
        return tuple(out)

    def _source(self, source: State | Context | GitRepository | HttpFile) -> Op:
        if isinstance(source, State):
            return self.state(source).op
        if isinstance(source, Context):
            name = self.sources.contexts[source.path]
            if name == "context":
                return ContextSource(excludes=self.inputs.context_excludes)
            return ContextSource(name=name)
        if isinstance(source, GitRepository):
            return GitSource(remote=source.url, ref=source.ref, subdir=source.subdir,
                             keep_git_dir=source.keep_git_dir, checksum=source.checksum)
        return HttpSource(url=source.url, checksum=source.checksum,
                          filename=source.filename or url_file_name(source.url))

    def _copy(self, state: StageState, step: Copy) -> None:
        source = self._source(step.source)
        paths = step.paths
        if isinstance(source, HttpSource):
            paths = (source.filename,)
        elif isinstance(source, GitSource) and not paths:
            paths = (".",)
        op = CopyOp(state.op, source, paths, step.dest, cwd=_cwd(state), chown=step.chown,
                    chmod=step.chmod, link=step.link, excludes=step.exclude,
                    parents=step.parents, user=state.config.get("User", ""))
        state.op = op
        self._history(state, f"COPY {' '.join(paths)} {step.dest}", op)

    def _workdir(self, state: StageState, step: Workdir) -> None:
        wd = normalize_workdir(state.config.get("WorkingDir") or "", step.path)
        state.config["WorkingDir"] = wd
        op: Op | None = None
        if wd != "/":
            op = MkdirOp(state.op, _clean(wd), 0o755, state.config.get("User", ""))
            state.op = op
        self._history(state, f"WORKDIR {wd}", op)


def _configure(state: StageState, step: Configure) -> None:
    config: dict[str, Any] = state.config
    value = step.value
    if step.key == "Env":
        env = list(config.get("Env") or ())
        for key, item in step.pairs:  # a variable set again keeps its place, as ENV
            names = [e.partition("=")[0] for e in env]
            if key in names:
                env[names.index(key)] = f"{key}={item}"
            else:
                env.append(f"{key}={item}")
        config["Env"] = env
        shown = " ".join(f"{k}={v}" for k, v in step.pairs)
    elif step.key == "Labels":
        config.setdefault("Labels", {}).update(dict(step.pairs))
        shown = " ".join(f"{k}={v}" for k, v in step.pairs)
    elif step.key == "User":
        config["User"] = shown = str(value)
    else:  # Entrypoint, Cmd
        command = [*state.shell, value] if isinstance(value, str) else list(value)
        config[step.key] = command
        if step.key == "Cmd":
            state.cmd_set = True
        elif not state.cmd_set:
            config.pop("Cmd", None)
        shown = json.dumps(command)
    state.history.append(HistoryStep(f"{step.key.upper()} {shown}", None,
                                     comment=HISTORY_COMMENT))


def _written(command: str | tuple[str, ...]) -> str:
    """A command as the definition wrote it (a list as JSON, as a Dockerfile's)."""
    return command if isinstance(command, str) else json.dumps(list(command))


def _cwd(state: StageState) -> str:
    return _clean(state.config.get("WorkingDir") or "/")


def _clean(path: str) -> str:
    """Go's path.Clean of an absolute path (normpath keeps a leading "//")."""
    return "/" + posixpath.normpath(path).lstrip("/")


def lower(state: State, inputs: BuildInputs, resolve: ImageResolver,
          sources: GraphSources) -> Conversion:
    """The state as the builder solves it: its op, image config and step names."""
    lowering = _Lowering(inputs, resolve, sources)
    target = lowering.state(state)
    for key, value in inputs.labels.items():
        target.config.setdefault("Labels", {})[key] = value
    return Conversion(target, lowering.names, {}, [], {})


@dataclass
class GraphDefinition:
    """A build definition that is a state (from `ocibuild.solve` or a graph frontend):
    the state and what it reads on disk. `ignore_patterns` are the main context's, as
    a Dockerfile build's .dockerignore patterns."""

    state: State
    sources: GraphSources
    frontend: str = ""  # the frontend that made the state; "" for ocibuild.solve

    @classmethod
    def of(cls, state: State, main: Context | None = None, frontend: str = ""
           ) -> GraphDefinition:
        if not isinstance(state, State):
            raise UsageError(f"expected an ocibuild.graph.State to build, got {state!r}")
        return cls(state, GraphSources.of(state, main), frontend)

    @property
    def ignore_patterns(self) -> list[str]:
        main = self.sources.main
        return list(main.patterns()) if main is not None else []

    def convert(self, inputs: BuildInputs, resolve: ImageResolver) -> Conversion:
        return lower(self.state, inputs, resolve, self.sources)
