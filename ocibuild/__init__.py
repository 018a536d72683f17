"""ocibuild: a daemonless, rootless OCI image builder.

The public API is what this module exports; every other module is internal.
"""

import sys
from types import ModuleType

from ocibuild.errors import OcibuildError

__version__ = "0.1.0"

__all__ = ["OcibuildError", "__version__", "build"]


class _Package(ModuleType):
    """`ocibuild.build` is the build() function, loaded on first use (`import ocibuild`
    stays light for the CLI and the sandbox), even after the submodule of the same name
    was imported (which would otherwise put the module in its place)."""

    def __getattribute__(self, name: str) -> object:
        if name == "build":
            from ocibuild.build import build

            return build
        return super().__getattribute__(name)


sys.modules[__name__].__class__ = _Package
