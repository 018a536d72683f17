"""Build definitions written in Python: immutable states, chained step by step.

A `State` is a root filesystem being made and the image config that travels with it,
as a stage of a Dockerfile is: a base (`image`, `scratch`, `oci_layout`) and the steps
after it (`run`, `copy`, `workdir` make layers; `env`, `user`, `label`, `entrypoint`,
`cmd` change the config). Every method returns a new state and leaves its own alone,
so a state can be shared, branched and reused as a value; states compare equal when
they describe the same build.

A state holds its steps, not ops. A base image is resolved (to a manifest digest and
its config) only when the state is solved, under that build's store, registry and
platform, exactly as the Dockerfile frontend resolves a `FROM`; the ops a `run` makes
depend on the base's environment, so they are made then too, by
`ocibuild.frontend.lower`. The same steps give the same ops as the Dockerfile
instructions they correspond to, hence the same cache keys and layers.

Sources that are not filesystems (`Context`, `GitRepository`, `HttpFile`) are only read
by `copy` and by `bind` mounts. Nothing here is expanded: a value is used as written
(Python formats strings; there are no `$VARS`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from ocibuild.errors import UsageError

__all__ = [
    "Context",
    "GitRepository",
    "HttpFile",
    "RunMount",
    "Source",
    "State",
]

Command = str | Sequence[str]  # a string runs in the image's shell; a list runs as is
Written = str | tuple[str, ...]  # a command as a state keeps it


@dataclass(frozen=True)
class Context:
    """A local directory read by `copy` and `bind` (`ocibuild.graph.context`): `path`
    is absolute; `include` and `exclude` are .dockerignore patterns (an empty
    `include` is everything)."""

    path: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def patterns(self) -> tuple[str, ...]:
        """What the build must not see, as one .dockerignore list: everything outside
        `include` (when given), then `exclude`."""
        kept = ("*", *(f"!{p}" for p in self.include)) if self.include else ()
        return (*kept, *self.exclude)


@dataclass(frozen=True)
class GitRepository:
    """A git repository's tree at `ref` (`ocibuild.graph.git`)."""

    url: str
    ref: str = ""
    subdir: str = ""
    keep_git_dir: bool = False
    checksum: str = ""  # a commit (prefix) the ref must resolve to


@dataclass(frozen=True)
class HttpFile:
    """A downloaded file (`ocibuild.graph.http`), named `filename` in the tree it makes
    (default: the last part of the URL's path)."""

    url: str
    checksum: str = ""  # "sha256:..." the body must have
    filename: str = ""


Source = Context | GitRepository | HttpFile


@dataclass(frozen=True)
class RunMount:
    """A mount of one `run` step: made by `cache`, `secret`, `bind`, `tmpfs` or `ssh`
    of `ocibuild.graph`, with the defaults of the `RUN --mount` of the same type."""

    type: str  # bind | cache | secret | tmpfs | ssh
    target: str
    source: State | Context | None = None
    source_path: str = "/"
    readonly: bool = True
    id: str = ""
    sharing: str = "shared"
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    required: bool = False
    env: str = ""
    size: int = 0


# -- steps: what a state records; turned into ops when it is solved ------------------------

@dataclass(frozen=True)
class Base:
    """Where a state starts: `kind` image (`ref`), layout (`ref` is the layout's path,
    `tag` one of its tags) or scratch; `platform` "" is the build's target platform."""

    kind: str
    ref: str = ""
    tag: str = ""
    platform: str = ""


@dataclass(frozen=True)
class Run:
    """A RUN step of a graph API state: its command, environment, mounts, network and security."""
    args: Written
    env: tuple[tuple[str, str], ...] = ()
    mounts: tuple[RunMount, ...] = ()
    network: str = "default"
    security: str = "sandbox"


@dataclass(frozen=True)
class Copy:
    """A COPY step of a graph API state: what it copies, from where, to where."""
    source: State | Source
    paths: tuple[str, ...]
    dest: str
    chown: str = ""
    chmod: str = ""
    link: bool = False
    exclude: tuple[str, ...] = ()
    parents: bool = False


@dataclass(frozen=True)
class Workdir:
    """A WORKDIR step of a graph API state."""
    path: str


@dataclass(frozen=True)
class Configure:
    """A change of the image config only: `key` names it; Env and Labels add `pairs`,
    User sets `value` (a name), Entrypoint and Cmd set `value` (a command)."""

    key: str
    pairs: tuple[tuple[str, str], ...] = ()
    value: str | tuple[str, ...] = ""


Step = Run | Copy | Workdir | Configure


def _pairs(values: Mapping[str, str], named: Mapping[str, str], what: str
           ) -> tuple[tuple[str, str], ...]:
    merged = {**values, **named}
    for key, value in merged.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise UsageError(f"{what}: names and values must be strings, got {key!r}={value!r}")
    return tuple(merged.items())


def _strings(value: Command, what: str) -> Written:
    if isinstance(value, str):
        return value
    items = tuple(value)
    if not all(isinstance(v, str) for v in items):
        raise UsageError(f"{what}: expected a string or a list of strings, got {value!r}")
    return items


def _paths(value: str | Sequence[str] | os.PathLike[str]) -> tuple[str, ...]:
    if isinstance(value, str | os.PathLike):
        return (os.fspath(value),)
    return tuple(os.fspath(v) for v in value)


@dataclass(frozen=True)
class State:
    """A root filesystem and its image config, step by step (see the module's notes).

    Make one with `ocibuild.graph.image`, `scratch` or `oci_layout`; chain steps; hand
    the last to `ocibuild.solve`."""

    base: Base
    steps: tuple[Step, ...] = field(default=())

    def _then(self, step: Step) -> State:
        return State(self.base, (*self.steps, step))

    def run(self, command: Command, *, mounts: Sequence[RunMount] = (),
            network: str = "default", env: Mapping[str, str] | None = None,
            security: str = "sandbox") -> State:
        """Run `command` (a string: in the image's shell, `sh -c`; a list: as is) and
        keep what it changed as a layer, as `RUN`. `env` adds variables for this step
        only (as `ARG`s do); `network` is `default`, `none` or `host`; `security`
        `insecure` needs the `security.insecure` entitlement."""
        if network not in ("default", "none", "host"):
            raise UsageError(f"run: network {network!r}: expected default, none or host")
        if security not in ("sandbox", "insecure"):
            raise UsageError(f"run: security {security!r}: expected sandbox or insecure")
        for mount in mounts:
            if not isinstance(mount, RunMount):
                raise UsageError(f"run: mounts: {mount!r} is not a mount (cache(), secret(), "
                                 "bind(), tmpfs() or ssh())")
        return self._then(Run(_strings(command, "run"), _pairs(env or {}, {}, "run: env"),
                              tuple(mounts), network, security))

    def copy(self, source: State | Source, paths: str | Sequence[str], dest: str, *,
             chown: str = "", chmod: str = "", link: bool = False,
             exclude: Sequence[str] = (), parents: bool = False) -> State:
        """Copy `paths` of `source` (a state, a `context`, a `git` tree or an `http`
        file) to `dest`, relative to the working directory, as `COPY --from`: a
        `dest` ending in `/` is a directory; `chown` is `USER[:GROUP]`, `chmod` octal
        or symbolic; `link` makes the layer independent of what is below it. An
        `http` file is copied whole (`paths` is not read: pass `()`)."""
        if not isinstance(source, State | Context | GitRepository | HttpFile):
            raise UsageError(f"copy: {source!r} is not a state or a source")
        if isinstance(source, HttpFile):
            paths = ()
        found = _paths(paths)
        if len(found) > 1 and not dest.endswith("/"):
            raise UsageError("copy: with more than one source path the destination must be "
                             "a directory and end with a /")
        return self._then(Copy(source, found, dest, chown, chmod, link,
                               tuple(exclude), parents))

    def workdir(self, path: str) -> State:
        """The working directory of later steps and of the image, made if missing (a
        relative path is taken from the current one), as `WORKDIR`."""
        return self._then(Workdir(path))

    def env(self, values: Mapping[str, str] | None = None, /, **named: str) -> State:
        """Set environment variables of the image and of later steps, as `ENV`."""
        return self._then(Configure("Env", _pairs(values or {}, named, "env")))

    def label(self, values: Mapping[str, str] | None = None, /, **named: str) -> State:
        """Add labels to the image, as `LABEL`."""
        return self._then(Configure("Labels", _pairs(values or {}, named, "label")))

    def user(self, name: str) -> State:
        """The user (`NAME`, `UID`, `UID:GID`) of later steps and of the image."""
        if not isinstance(name, str):
            raise UsageError(f"user: expected a string, got {name!r}")
        return self._then(Configure("User", value=name))

    def entrypoint(self, command: Command) -> State:
        """The image's entrypoint (a string: run by the shell); clears a `cmd` of the
        base image, as `ENTRYPOINT` does."""
        return self._then(Configure("Entrypoint", value=_strings(command, "entrypoint")))

    def cmd(self, command: Command) -> State:
        """The image's default command (a string: run by the shell), as `CMD`."""
        return self._then(Configure("Cmd", value=_strings(command, "cmd")))

    def platform(self, platform: str) -> State:
        """The platform (`os/arch[/variant]`) of this state: its base image is resolved
        for it and the image says it; default the build's target platform."""
        return State(replace(self.base, platform=platform), self.steps)
