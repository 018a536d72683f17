"""Registries: references, credentials, pull, push, and image sources without a registry.

The public surface is what this module exports; the modules behind it are private.
"""

from __future__ import annotations

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
from ocibuild.registry.push import PushReport, push_image
from ocibuild.registry.reference import (
    InvalidReferenceError,
    Reference,
    parse_reference,
    parse_repository,
)
from ocibuild.registry.resolve import (
    BuildContext,
    parse_build_context,
    pull_into_store,
    resolve_build_context,
    resolve_source,
)

__all__ = [
    "AuthenticationError",
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
    "push_image",
    "push_names",
    "remove_credentials",
    "resolve_build_context",
    "resolve_source",
    "store_credentials",
    "store_sources",
]
