"""`ocibuild rootfs`: make a base image from local files (the rootfs/ recipes)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ocibuild.errors import UsageError
from ocibuild.oci import layout_ref

if TYPE_CHECKING:
    from ocibuild.image_import import ImageDescription

Maker = Callable[[Path], "tuple[Path, ImageDescription]"]


def _output_options(default_tag: str | None) -> Callable[[click.Command], click.Command]:
    def decorate(f: click.Command) -> click.Command:
        f = click.option("--compression", type=click.Choice(["gzip", "zstd", "none"]),
                         default="gzip", show_default=True)(f)
        f = click.option("--output", "output",
                         help="Where to write: oci:PATH (default: the local store).")(f)
        return click.option("-t", "--tag", "tag", default=default_tag,
                            show_default=default_tag is not None,
                            help="Image name, NAME[:TAG].")(f)
    return decorate


def _make_and_import(ctx: click.Context, make: Maker, tag: str, output: str | None,
                     compression: str) -> None:
    from ocibuild.image_import import import_rootfs, split_name
    from ocibuild.oci.layout import ImageLayout
    from ocibuild.rootfs import new_workdir

    repo, short_tag = split_name(tag)
    lref = layout_ref.parse(output) if output is not None else None
    if lref is not None and lref.ref is not None:
        raise UsageError(f"--output {output}: give the tag with --tag, not in the path")
    work = new_workdir()
    try:
        source, description = make(work)
        if lref is not None:
            result = import_rootfs(source, ImageLayout.init(lref.path), tag=tag,
                                   compression=compression, description=description)
            where = f"oci:{lref.path}:{short_tag}"
        else:
            from ocibuild.cache.store import Store
            from ocibuild.failed_build import cleaned_up

            store = Store.open(Path(ctx.obj["root"]) if ctx.obj.get("root") else None)
            with cleaned_up(store):
                result = import_rootfs(source, store.layout, tag=None,
                                       compression=compression, description=description)
                store.tag(tag, result.manifest)
            where = f"{repo}:{short_tag}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    click.echo(f"{where} {result.manifest.digest}")


@click.group("rootfs")
def rootfs_group() -> None:
    """Make a base image from local files, without a registry (rootfs/ recipes)."""


@rootfs_group.command("list")
def list_cmd() -> None:
    """Show the recipes, what each makes and what it needs on this host."""
    from ocibuild.rootfs import RECIPES

    for recipe in RECIPES.values():
        missing = recipe.missing()
        needs = ", ".join(pkg for _, pkg in recipe.needs)
        state = "ready" if not missing else f"missing {', '.join(missing)}"
        click.echo(f"{recipe.name}\n  makes: {recipe.makes}\n  needs: {needs} ({state})")


@rootfs_group.command("busybox")
@_output_options("busybox:latest")
@click.pass_context
def busybox_cmd(ctx: click.Context, tag: str, output: str | None, compression: str) -> None:
    """A busybox image from the host's busybox-static (for tests and demos)."""
    from ocibuild.rootfs import busybox

    _make_and_import(ctx, busybox.make, tag, output, compression)


@rootfs_group.command("debian")
@click.option("--suite", default="bookworm", show_default=True,
              help="Debian release (codename or suite).")
@click.option("--variant", type=click.Choice(["minbase", "apt"]), default="minbase",
              show_default=True, help="mmdebstrap's package set.")
@click.option("--source", "source", metavar="MIRROR_URL|DIR",
              help="An apt mirror, or a directory of .deb files (default: the mirror the "
                   "host's apt uses).")
@click.option("--include", "include", multiple=True, metavar="PKG,...",
              help="More packages to install (repeatable, comma-separated).")
@_output_options(None)
@click.pass_context
def debian_cmd(ctx: click.Context, suite: str, variant: str, source: str | None,
               include: tuple[str, ...], tag: str | None, output: str | None,
               compression: str) -> None:
    """A minimal Debian image made by mmdebstrap, rootless (its unshare mode).

    Reproducible: with SOURCE_DATE_EPOCH set, the same packages give the same digest.
    """
    from ocibuild.rootfs import debian

    packages = tuple(p.strip() for item in include for p in item.split(",") if p.strip())
    opts = debian.DebianOptions(suite, variant, debian.resolve_source(source, suite), packages)
    click.echo(f"making Debian {suite} ({variant}) from {opts.source} with mmdebstrap",
               err=True)
    _make_and_import(ctx, lambda work: debian.make(opts, work), tag or f"debian:{suite}",
                     output, compression)
