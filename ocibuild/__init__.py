"""ocibuild: a daemonless, rootless OCI image builder.

The public API is what this module exports; every other module is internal.
"""

from ocibuild.errors import OcibuildError

__version__ = "0.1.0"

__all__ = ["OcibuildError", "__version__", "build"]


def __getattr__(name: str) -> object:
    # imported on first use: `import ocibuild` stays light for the CLI and the sandbox
    if name == "build":
        from ocibuild.build import build

        return build
    raise AttributeError(f"module 'ocibuild' has no attribute {name!r}")
