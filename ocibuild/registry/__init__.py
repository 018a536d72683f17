"""Registries: references, credentials, pull, push, and image sources without a registry.

The public surface is what this module exports; the modules behind it are private.
Each name is imported from its module on first use (PEP 562): a build that never
reaches a registry must not pay for the HTTP client (socket, and ssl for https: ~5-10
ms of start-up), yet `from ocibuild.registry import parse_build_context` is called
by every build.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs a registry command ~2 ms
if TYPE_CHECKING:
    from typing import Any

    from ocibuild.reference import (
        InvalidReferenceError,
        Reference,
        parse_reference,
        parse_repository,
    )
    from ocibuild.registry.auth import (
        Credentials,
        find_credentials,
        remove_credentials,
        store_credentials,
    )
    from ocibuild.registry.blob_sources import BlobSources
    from ocibuild.registry.client import ClientPool, RegistryClient
    from ocibuild.registry.errors import (
        AuthenticationError,
        NotFoundError,
        RegistryError,
        UnreachableError,
    )
    from ocibuild.registry.export import push_names, store_sources
    from ocibuild.registry.options import RegistryOptions
    from ocibuild.registry.pull import PullStats, pull
    from ocibuild.registry.push import BlobPushReport, PushReport, push_blobs, push_image
    from ocibuild.registry.resolve import (
        BuildContext,
        parse_build_context,
        pull_into_store,
        resolve_build_context,
        resolve_source,
    )

# public name -> the module (under ocibuild.registry) that defines it
_HOME: dict[str, str] = {
    "Credentials": "auth",
    "find_credentials": "auth",
    "remove_credentials": "auth",
    "store_credentials": "auth",
    "BlobSources": "blob_sources",
    "ClientPool": "client",
    "RegistryClient": "client",
    "AuthenticationError": "errors",
    "NotFoundError": "errors",
    "RegistryError": "errors",
    "UnreachableError": "errors",
    "push_names": "export",
    "store_sources": "export",
    "RegistryOptions": "options",
    "PullStats": "pull",
    "pull": "pull",
    "BlobPushReport": "push",
    "PushReport": "push",
    "push_blobs": "push",
    "push_image": "push",
    "InvalidReferenceError": "ocibuild.reference",
    "Reference": "ocibuild.reference",
    "parse_reference": "ocibuild.reference",
    "parse_repository": "ocibuild.reference",
    "BuildContext": "resolve",
    "parse_build_context": "resolve",
    "pull_into_store": "resolve",
    "resolve_build_context": "resolve",
    "resolve_source": "resolve",
}

__all__ = [
    "AuthenticationError",
    "BlobPushReport",
    "BlobSources",
    "BuildContext",
    "ClientPool",
    "Credentials",
    "InvalidReferenceError",
    "NotFoundError",
    "PullStats",
    "PushReport",
    "Reference",
    "RegistryClient",
    "RegistryError",
    "RegistryOptions",
    "UnreachableError",
    "find_credentials",
    "parse_build_context",
    "parse_reference",
    "parse_repository",
    "pull",
    "pull_into_store",
    "push_blobs",
    "push_image",
    "push_names",
    "remove_credentials",
    "resolve_build_context",
    "resolve_source",
    "store_credentials",
    "store_sources",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = home if home.startswith("ocibuild.") else f"{__name__}.{home}"
    __import__(module)  # not importlib's import_module: that module (and warnings) would
    value = getattr(sys.modules[module], name)  # load for a cached push's question
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


_ModuleType = type(sys)  # types.ModuleType, without loading types


class _Package(_ModuleType):
    """Keeps `ocibuild.registry.pull` the function: importing the submodule of the same
    name would otherwise bind the module there (the eager import used to rebind it)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, _ModuleType) and _HOME.get(name) == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
