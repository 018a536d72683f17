"""The `python` frontend: a build definition that is a Python file.

`ocibuild build --frontend python -f build.py CONTEXT` (or a first line `# syntax=python`)
runs build.py as a script of its own (`runpy`, under the name `__ocibuild_build__`,
so an `if __name__ == "__main__":` block does not run) and calls the `build(ctx)` it
defines with an `ocibuild.graph.FrontendContext`; what it returns is the state to
build. The file runs in the builder's process with the caller's rights, as a
Dockerfile's frontend would run with BuildKit's: it is code the user chose to run.
"""

from __future__ import annotations

import runpy

from ocibuild.errors import UsageError
from ocibuild.graph import FrontendContext, State


def build_from_file(ctx: FrontendContext) -> State:
    """The state build.py's `build(ctx)` returns."""
    namespace = runpy.run_path(str(ctx.file), run_name="__ocibuild_build__")
    build = namespace.get("build")
    if not callable(build):
        raise UsageError(f"{ctx.file}: a Python build definition defines build(ctx) "
                         "returning an ocibuild.graph.State")
    state = build(ctx)
    if not isinstance(state, State):
        raise UsageError(f"{ctx.file}: build(ctx) returned {type(state).__name__}, "
                         "not an ocibuild.graph.State")
    return state
