"""ocibuild: a daemonless, rootless OCI image builder.

The public API is what this module exports (`__all__`); every other module is
internal. docs/python-api.md shows it at work:

    import ocibuild

    report = ocibuild.build("./app", tags=["app:1"])
    ocibuild.push("app:1", ["registry.example/app:1"])

Functions: `build` (with a `BuildOptions`, or its fields as keywords), `solve` (a
state of the graph API, `ocibuild.graph`, with the same options), `pull`, `push`,
`import_rootfs`, `tag`, `images`. Progress: a `ProgressCallback` receives
`ProgressEvent`s. Registries: `RegistryOptions`. Every error raised is an
`OcibuildError`: `UsageError`, `DockerfileError`, `StepFailedError`, `RegistryError`,
`StoreError`, `ImageNotFoundError`, `SandboxError`, `DiskFullError`.

Names load on first use, so that `import ocibuild` stays light for the CLI and the
sandbox helpers.
"""

from ocibuild.errors import OcibuildError

TYPE_CHECKING = False  # not typing's: importing typing costs every command ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from ocibuild.api import PushResult, images, import_rootfs, pull, push, tag
    from ocibuild.build_options import BuildOptions
    from ocibuild.builder import BuildReport, build, solve
    from ocibuild.errors import DiskFullError, StepFailedError, StoreError, UsageError
    from ocibuild.frontend.dockerfile.errors import DockerfileError
    from ocibuild.local_images import ImageNotFoundError, ImageSummary
    from ocibuild.progress.events import Event as ProgressEvent
    from ocibuild.progress.events import Sink as ProgressCallback
    from ocibuild.registry.errors import RegistryError
    from ocibuild.registry.options import RegistryOptions
    from ocibuild.sandbox.errors import SandboxError

__version__ = "0.1.0"

# public name -> (module, name there)
_HOME: dict[str, tuple[str, str]] = {
    "build": ("ocibuild.builder", "build"),
    "solve": ("ocibuild.builder", "solve"),
    "BuildReport": ("ocibuild.builder", "BuildReport"),
    "BuildOptions": ("ocibuild.build_options", "BuildOptions"),
    "pull": ("ocibuild.api", "pull"),
    "push": ("ocibuild.api", "push"),
    "import_rootfs": ("ocibuild.api", "import_rootfs"),
    "tag": ("ocibuild.api", "tag"),
    "images": ("ocibuild.api", "images"),
    "PushResult": ("ocibuild.api", "PushResult"),
    "ImageSummary": ("ocibuild.local_images", "ImageSummary"),
    "ImageNotFoundError": ("ocibuild.local_images", "ImageNotFoundError"),
    "ProgressEvent": ("ocibuild.progress.events", "Event"),
    "ProgressCallback": ("ocibuild.progress.events", "Sink"),
    "RegistryOptions": ("ocibuild.registry.options", "RegistryOptions"),
    "UsageError": ("ocibuild.errors", "UsageError"),
    "StepFailedError": ("ocibuild.errors", "StepFailedError"),
    "StoreError": ("ocibuild.errors", "StoreError"),
    "DiskFullError": ("ocibuild.errors", "DiskFullError"),
    "DockerfileError": ("ocibuild.frontend.dockerfile.errors", "DockerfileError"),
    "RegistryError": ("ocibuild.registry.errors", "RegistryError"),
    "SandboxError": ("ocibuild.sandbox.errors", "SandboxError"),
}

__all__ = [
    "BuildOptions",
    "BuildReport",
    "DiskFullError",
    "DockerfileError",
    "ImageNotFoundError",
    "ImageSummary",
    "OcibuildError",
    "ProgressCallback",
    "ProgressEvent",
    "PushResult",
    "RegistryError",
    "RegistryOptions",
    "SandboxError",
    "StepFailedError",
    "StoreError",
    "UsageError",
    "__version__",
    "build",
    "images",
    "import_rootfs",
    "pull",
    "push",
    "solve",
    "tag",
]


def __getattr__(name: str) -> "Any":
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'ocibuild' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home[0]), home[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *(k for k in globals() if k.startswith("__"))})


del TYPE_CHECKING
