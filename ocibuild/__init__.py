"""ocibuild: a daemonless, rootless OCI image builder.

The public API is what this module exports; every other module is internal.
`build` is loaded on first use, so that `import ocibuild` stays light for the CLI
and the sandbox helpers.
"""

from __future__ import annotations

from ocibuild.errors import OcibuildError

TYPE_CHECKING = False  # not typing's: importing typing costs every command ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from ocibuild.builder import BuildReport, build

__version__ = "0.1.0"

__all__ = ["BuildReport", "OcibuildError", "__version__", "build"]


def __getattr__(name: str) -> Any:
    if name in ("build", "BuildReport"):
        from ocibuild import builder

        return getattr(builder, name)
    raise AttributeError(f"module 'ocibuild' has no attribute {name!r}")
