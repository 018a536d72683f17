"""The build graph, and the public Python API that writes one (`ocibuild.graph`).

Public (`__all__`): states and the functions that start them (`image`, `scratch`,
`oci_layout`), the sources steps read (`context`, `git`, `http`), the mounts of a
`run` (`cache`, `secret`, `bind`, `tmpfs`, `ssh`), and `FrontendContext`, what a
frontend's `build(ctx)` is given. `ocibuild.solve(state, options)` builds a state
([docs/python-api.md](../../docs/python-api.md)); `state.py` has the design notes.

Internal: the ops of `ops.py` (immutable, with deterministic digests: the sha256 of
canonical JSON of an op's fields and its inputs' digests, so equal ops are equal
everywhere) are re-exported here for the engine's modules; they are not part of the
public API and are not in `__all__`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibuild.errors import UsageError
from ocibuild.graph.ops import ContextSource as ContextSource
from ocibuild.graph.ops import CopyOp as CopyOp
from ocibuild.graph.ops import ExecOp as ExecOp
from ocibuild.graph.ops import GitSource as GitSource
from ocibuild.graph.ops import HttpSource as HttpSource
from ocibuild.graph.ops import ImageSource as ImageSource
from ocibuild.graph.ops import InlineSource as InlineSource
from ocibuild.graph.ops import MkdirOp as MkdirOp
from ocibuild.graph.ops import Mount as Mount
from ocibuild.graph.ops import Op as Op
from ocibuild.graph.ops import ScratchSource as ScratchSource
from ocibuild.graph.ops import walk as walk

if TYPE_CHECKING:
    from ocibuild.graph.state import (
        Command,
        Context,
        GitRepository,
        HttpFile,
        RunMount,
        Source,
        State,
    )

__all__ = [
    "Command",
    "Context",
    "FrontendContext",
    "GitRepository",
    "HttpFile",
    "RunMount",
    "Source",
    "State",
    "bind",
    "cache",
    "context",
    "git",
    "http",
    "image",
    "oci_layout",
    "scratch",
    "secret",
    "ssh",
    "tmpfs",
]


# The state module loads when a state is first made or named: a Dockerfile build
# imports this package for the ops alone, and the states' ten dataclasses cost ~5 ms.
_STATE_NAMES = frozenset({"Base", "Command", "Context", "GitRepository", "HttpFile",
                          "RunMount", "Source", "State"})


def __getattr__(name: str) -> Any:
    if name not in _STATE_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ocibuild.graph import state

    value = getattr(state, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_STATE_NAMES})


# -- states ------------------------------------------------------------------------------

def image(ref: str, *, platform: str = "") -> State:
    """A state starting from an image (`FROM ref`): the local store's, else pulled.
    `platform` chooses among a multi-platform image's (default: the target's)."""
    if not isinstance(ref, str) or not ref:
        raise UsageError(f"image: expected an image reference, got {ref!r}")
    if ref.lower() == "scratch":
        return scratch(platform=platform)
    from ocibuild.graph.state import Base, State

    return State(Base("image", ref, platform=platform))


def scratch(*, platform: str = "") -> State:
    """An empty root filesystem (`FROM scratch`)."""
    from ocibuild.graph.state import Base, State

    return State(Base("scratch", platform=platform))


def oci_layout(path: str | os.PathLike[str], tag: str = "", *, platform: str = "") -> State:
    """A state starting from an image of an OCI image layout directory (its only
    image, or the one tagged `tag`), as `--build-context NAME=oci-layout://PATH`."""
    from ocibuild.graph.state import Base, State

    return State(Base("layout", str(Path(path).resolve()), tag=tag, platform=platform))


# -- sources -------------------------------------------------------------------------------

def context(path: str | os.PathLike[str] = ".", *, include: Sequence[str] = (),
            exclude: Sequence[str] = ()) -> Context:
    """A local directory: what `copy` and `bind` read. `include` and `exclude` are
    .dockerignore patterns; only the build's main context (the first one its steps
    read) may have them."""
    for what, value in (("include", include), ("exclude", exclude)):
        if isinstance(value, str):
            raise UsageError(f"context: {what} is a list of patterns, not {value!r}")
    from ocibuild.graph.state import Context

    return Context(str(Path(path).resolve()), tuple(include), tuple(exclude))


def git(url: str, ref: str = "", *, subdir: str = "", keep_git_dir: bool = False,
        checksum: str = "") -> GitRepository:
    """A git repository's tree at `ref` (a branch, tag or commit; default HEAD)."""
    from ocibuild.graph.state import GitRepository

    return GitRepository(url, ref, subdir, keep_git_dir, checksum)


def http(url: str, *, checksum: str = "", filename: str = "") -> HttpFile:
    """A file downloaded from `url` (its body's sha256 must be `checksum` when given)."""
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"http: {url!r} is not an http(s) URL")
    from ocibuild.graph.state import HttpFile

    return HttpFile(url, checksum, filename)


# -- mounts of run() -------------------------------------------------------------------

def cache(target: str, *, id: str = "", sharing: str = "shared",  # noqa: A002
          readonly: bool = False, source: State | None = None, mode: int | None = None,
          uid: int | None = None, gid: int | None = None) -> RunMount:
    """A cache directory kept between builds (`--mount=type=cache`); `id` defaults to
    the target; `sharing` is shared, private or locked; `source` seeds it."""
    if sharing not in ("shared", "private", "locked"):
        raise UsageError(f"cache: sharing {sharing!r}: expected shared, private or locked")
    from ocibuild.graph.state import RunMount

    return RunMount("cache", target, source, readonly=readonly, id=id, sharing=sharing,
                    mode=mode, uid=uid, gid=gid)


def secret(id: str, *, target: str = "", env: str = "", required: bool = False,  # noqa: A002
           mode: int | None = None, uid: int | None = None,
           gid: int | None = None) -> RunMount:
    """The build's secret `id` (`BuildOptions.secrets`) as a file, by default
    /run/secrets/ID, or as the variable `env` (`--mount=type=secret`)."""
    if not id:
        raise UsageError("secret: needs an id")
    if not target and not env:
        target = f"/run/secrets/{id}"
    from ocibuild.graph.state import RunMount

    return RunMount("secret", target, id=id, required=required, env=env, mode=mode,
                    uid=uid, gid=gid)


def bind(source: State | Context, target: str, *, path: str = "/",
         readonly: bool = True) -> RunMount:
    """`path` of a state or a context, seen at `target` during the step
    (`--mount=type=bind`); writes to a read-write bind are thrown away."""
    from ocibuild.graph.state import Context, RunMount, State

    if not isinstance(source, State | Context):
        raise UsageError(f"bind: {source!r} is not a state or a context")
    return RunMount("bind", target, source, source_path=path, readonly=readonly)


def tmpfs(target: str, *, size: int = 0) -> RunMount:
    """An empty tmpfs at `target` (`size` in bytes, 0: the default)."""
    from ocibuild.graph.state import RunMount

    return RunMount("tmpfs", target, readonly=False, size=size)


def ssh(id: str = "default", *, target: str = "", required: bool = False  # noqa: A002
        ) -> RunMount:
    """The SSH agent forwarded as `id` (`BuildOptions.ssh`), as `--mount=type=ssh`."""
    from ocibuild.graph.state import RunMount

    return RunMount("ssh", target, id=id, required=required)


# -- frontends -------------------------------------------------------------------------------

@dataclass(frozen=True)
class FrontendContext:
    """What a frontend's `build(ctx)` is given: the build `context` (the directory
    the command names, less its .dockerignore), the definition `file` and its
    `text`, the `build_args`, the `target` asked for and the target `platform`
    (`os/arch[/variant]`)."""

    context: Context
    file: Path
    text: str
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    platform: str = ""
