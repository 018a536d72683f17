"""The registry flags of every command that talks to registries (light to import:
`ocibuild build` takes them without loading the registry client)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def registry_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command that talks to registries takes."""
    f = click.option("--jobs", "-j", type=click.IntRange(1, 64), default=4, show_default=True,
                     help="Blobs transferred at the same time.")(f)
    return registry_connection_options(f)


def registry_connection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """How registries are reached and who we are there: `--insecure-registry`,
    `--registry-ca`, `--authfile` (`ocibuild build` has its own `--jobs`)."""
    f = click.option("--authfile", type=click.Path(dir_okay=False),
                     help="Read credentials from this file only.")(f)
    f = click.option("--registry-ca", "registry_ca", multiple=True,
                     type=click.Path(exists=True, dir_okay=False),
                     help="Trust this CA bundle for registries (repeatable).")(f)
    f = click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
                     help="Reach this registry over plain http (repeatable).")(f)
    return f
