"""ocibuild: a daemonless, rootless OCI image builder.

The public API is what this module exports; every other module is internal.
"""

from ocibuild.errors import OcibuildError

__version__ = "0.1.0"

__all__ = ["OcibuildError", "__version__"]
