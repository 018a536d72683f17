"""The registry flags of every command that talks to registries (light to import:
`ocibuild build` takes them without loading the registry client)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from ocibuild.registry.timeout import DEFAULT_TIMEOUT, TIMEOUT_ENV


def registry_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command that talks to registries takes."""
    f = click.option("--jobs", "-j", type=click.IntRange(1, 64), default=4, show_default=True,
                     help="Blobs transferred at the same time.")(f)
    return registry_connection_options(f)


def registry_connection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """How registries are reached and who we are there: `--insecure-registry`,
    `--registry-ca`, `--authfile`, `--registry-timeout` (`ocibuild build` has its own
    `--jobs`)."""
    f = click.option("--registry-timeout", type=click.FloatRange(0, 86400, min_open=True),
                     envvar=TIMEOUT_ENV, metavar="SECONDS", expose_value=False,
                     callback=_set_timeout,
                     help=f"Give up on a registry request after this long without progress "
                          f"(default {DEFAULT_TIMEOUT:g}; also ${TIMEOUT_ENV}).")(f)
    f = click.option("--authfile", type=click.Path(dir_okay=False),
                     help="Read credentials from this file only.")(f)
    f = click.option("--registry-ca", "registry_ca", multiple=True,
                     type=click.Path(exists=True, dir_okay=False),
                     help="Trust this CA bundle for registries (repeatable).")(f)
    f = click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
                     help="Reach this registry over plain http (repeatable).")(f)
    return f


def _set_timeout(ctx: click.Context, param: click.Parameter, value: float | None) -> None:
    """The flag sets the variable every RegistryOptions of this command reads, so that it
    reaches them without a parameter through each command and the build API."""
    if value is not None:
        os.environ[TIMEOUT_ENV] = f"{value:g}"
