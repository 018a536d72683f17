"""Frontends by name: which one reads a build definition.

A frontend turns a definition file into a build. Two are built in: `dockerfile`
(the Dockerfile frontend, `frontend/dockerfile/`) and `python` (a Python file that
defines `build(ctx) -> State`, `python_file.py`). Others are Python packages that
declare an entry point in the group `ocibuild.frontends`: its name is the frontend's,
its object a callable taking an `ocibuild.graph.FrontendContext` and returning an
`ocibuild.graph.State`. Every frontend but the Dockerfile one therefore ends in the
graph API, and is solved as `ocibuild.solve` solves a state.

Which one: `--frontend NAME` (`BuildOptions.frontend`), else the definition's
`# syntax=NAME` parser directive (the BUILDKIT_SYNTAX build argument first, as
BuildKit reads them), else `dockerfile`. BuildKit would pull a frontend image for a
syntax; ocibuild pulls nothing. `docker/dockerfile:1.x` and the other names of the
Dockerfile syntax (`convert.is_builtin_syntax`) are the built-in frontend. Another
image reference (with a `/`, `:` or `@`) keeps what it did before frontends could be
chosen: the built-in frontend, with the warning the converter gives. A plain name that
is not installed, and any unknown `--frontend`, is an error listing the installed
frontends.

Entry points are looked up (`importlib.metadata`) only when a name is not built in,
so a Dockerfile build never scans the installed packages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocibuild.errors import OcibuildError, UsageError
from ocibuild.graph import FrontendContext

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from ocibuild.graph import State

ENTRY_POINT_GROUP = "ocibuild.frontends"
DOCKERFILE = "dockerfile"
PYTHON = "python"
BUILTIN = (DOCKERFILE, PYTHON)

Frontend = Callable[[FrontendContext], "State"]

_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_DIRECTIVE_NAMES = frozenset({"syntax", "escape", "check"})


class FrontendError(OcibuildError):
    """A frontend that failed: it raised, or did not return a state."""


@dataclass(frozen=True)
class Chosen:
    """The frontend a build uses: its `name`, and `run` (None for the built-in
    Dockerfile frontend, which is not a graph frontend)."""

    name: str
    run: Frontend | None = None


def syntax_directive(text: str) -> str:
    """The `# syntax=` value of a definition ("" if none): parser directives are the
    leading `# key=value` comment lines, as the Dockerfile parser reads them."""
    for line in text.removeprefix("\ufeff").splitlines():
        m = _DIRECTIVE.match(line.strip())
        if m is None or m.group(1).lower() not in _DIRECTIVE_NAMES:
            return ""
        if m.group(1).lower() == "syntax":
            return m.group(2)
    return ""


def installed() -> dict[str, str]:
    """Every frontend name, built-in or from an entry point, and where it comes from."""
    found = {DOCKERFILE: "built-in", PYTHON: "built-in"}
    for ep in _entry_points().values():
        found.setdefault(ep.name, ep.value)
    return found


def _entry_points() -> dict[str, EntryPoint]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _unknown(what: str) -> UsageError:
    names = ", ".join(sorted(installed()))
    return UsageError(f"{what}: no such frontend is installed (installed frontends: {names}; "
                      f"others are Python packages with an entry point in the group "
                      f"{ENTRY_POINT_GROUP})")


def by_name(name: str, what: str) -> Chosen | None:
    """The frontend `name` names; None when it is not installed."""
    from ocibuild.frontend.dockerfile.convert import is_builtin_syntax

    if is_builtin_syntax(name):
        return Chosen(DOCKERFILE)
    if name == PYTHON:
        from ocibuild.frontend.python_file import build_from_file

        return Chosen(PYTHON, build_from_file)
    ep = _entry_points().get(name)
    if ep is None:
        return None
    try:
        loaded = ep.load()
    except Exception as exc:  # noqa: BLE001  (third-party code: any failure is its own)
        raise FrontendError(f"{what}: the frontend {name} ({ep.value}) could not be "
                            f"loaded: {type(exc).__name__}: {exc}") from None
    if not callable(loaded):
        raise FrontendError(f"{what}: the frontend {name} ({ep.value}) is not callable")
    return Chosen(name, loaded)


def choose(name: str | None, text: str, build_args: Mapping[str, str]) -> Chosen:
    """The frontend of a build: `name` (--frontend) if given, else the definition's
    syntax (module notes)."""
    if name:
        chosen = by_name(name, f"--frontend {name}")
        if chosen is None:
            raise _unknown(f"--frontend {name}")
        return chosen
    where, syntax = "BUILDKIT_SYNTAX", build_args.get("BUILDKIT_SYNTAX", "")
    syntax = syntax.strip().split(" ", 1)[0]
    if not syntax:
        where, syntax = "# syntax", syntax_directive(text)
    if not syntax:
        return Chosen(DOCKERFILE)
    chosen = by_name(syntax, f"{where}={syntax}")
    if chosen is not None:
        return chosen
    if any(c in syntax for c in "/:@"):  # a frontend image: the converter warns
        return Chosen(DOCKERFILE)
    raise _unknown(f"{where}={syntax}")


def run(chosen: Chosen, ctx: FrontendContext) -> State:
    """The state `chosen` makes of the definition. Whatever it raises becomes one
    error naming the frontend and the line of the definition (or of the frontend's
    code) that raised, never a traceback."""
    assert chosen.run is not None
    try:
        state = chosen.run(ctx)
    except OcibuildError:
        raise
    except Exception as exc:  # noqa: BLE001  (the definition is the user's code)
        raise FrontendError(f"frontend {chosen.name}: {_where(exc, ctx)}"
                            f"{type(exc).__name__}: {exc}") from None
    from ocibuild.graph import State

    if not isinstance(state, State):
        raise FrontendError(f"frontend {chosen.name}: {ctx.file.name} did not give an "
                            f"ocibuild.graph.State but {type(state).__name__}")
    return state


def _where(exc: BaseException, ctx: FrontendContext) -> str:
    """`FILE:LINE: ` of the innermost frame in the definition file, else in any file."""
    import traceback  # only a failing frontend pays for it

    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return f"{exc.filename}:{exc.lineno}: "
    own = [f for f in frames if f.filename == str(ctx.file)] or frames[-1:]
    return f"{own[-1].filename}:{own[-1].lineno}: " if own else ""
