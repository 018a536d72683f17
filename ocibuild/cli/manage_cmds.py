"""`ocibuild tag`, `rmi`, `images`, `save`, `load` and `copy`: managing the store's images."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ocibuild.cli.registry_flags import registry_options
from ocibuild.errors import UsageError, printable

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.local_images import ImageSummary


def _store(ctx: click.Context) -> Store:
    from ocibuild.cache.store import Store

    return Store.open(ctx.obj.get("root") if ctx.obj else None)


@click.command("tag")
@click.argument("source")
@click.argument("targets", nargs=-1, required=True)
@click.pass_context
def tag_cmd(ctx: click.Context, source: str, targets: tuple[str, ...]) -> None:
    """Give the local image SOURCE (name, digest or image ID) more names."""
    from ocibuild.local_images import tag_image

    tag_image(_store(ctx), source, targets)


@click.command("rmi")
@click.argument("images", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True,
              help="Remove every name of an image given by ID or digest.")
@click.option("--prune", is_flag=True,
              help="Then delete the blobs and cache no remaining image uses "
                   "(else `ocibuild cache prune` does).")
@click.pass_context
def rmi_cmd(ctx: click.Context, images: tuple[str, ...], force: bool, prune: bool) -> None:
    """Remove local images' names (NAME, digest or image ID)."""
    from ocibuild.cache.names import familiar_name
    from ocibuild.cache.units import human_size
    from ocibuild.local_images import remove_images

    report = remove_images(_store(ctx), images, force=force, prune=prune)
    for name in report.untagged:
        click.echo(f"Untagged: {printable(familiar_name(name))}")
    if report.pruned is not None:
        click.echo(f"Deleted {report.pruned.blobs_removed} blobs; reclaimed "
                   f"{human_size(report.pruned.reclaimed)}", err=True)


# -- images ------------------------------------------------------------------------------
def _created_ago(created: str) -> str:
    from ocibuild.cache.units import human_ago

    if not created:
        return "N/A"
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return created
    return human_ago(time.time() - when)


def _fields(row: ImageSummary) -> dict[str, Any]:
    """The fields `--format` templates name (docker's and podman's names)."""
    from ocibuild.cache.units import human_size

    ago = _created_ago(row.created)
    return {"Repository": row.repository, "Tag": row.tag, "ID": row.short_id,
            "Id": row.id.removeprefix("sha256:"), "Digest": row.digest, "Created": ago,
            "CreatedSince": ago, "CreatedAt": row.created or "N/A",
            "Size": human_size(row.size), "Name": row.name, "Names": [row.name],
            "Dangling": row.dangling, "Platforms": ",".join(row.platforms)}


def _repository_of(full: str) -> str:
    """docker.io/library/busybox:latest or ...@sha256:... -> docker.io/library/busybox."""
    name = full.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[:colon] if colon > slash else name


def _json_row(row: ImageSummary) -> dict[str, Any]:
    """As `podman images --format json` lists an image name."""
    try:
        created = int(datetime.fromisoformat(row.created.replace("Z", "+00:00")).timestamp())
    except ValueError:
        created = 0
    return {"Id": row.id.removeprefix("sha256:"), "Names": [row.name],
            "RepoTags": [] if row.dangling else [row.name],
            "RepoDigests": [f"{_repository_of(row.name)}@{row.digest}"],
            "Repository": row.repository, "Tag": row.tag, "Digest": row.digest,
            "Created": created, "CreatedAt": row.created, "Size": row.size,
            "Dangling": row.dangling, **({"Platforms": list(row.platforms)}
                                         if row.platforms else {})}


@click.command("images")
@click.argument("reference", required=False)
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--digests", is_flag=True, help="Show manifest digests.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="reference=PATTERN (a glob on the name) or dangling=true|false "
                   "(repeatable).")
@click.option("--format", "fmt", metavar="TEMPLATE|json",
              help="Print each image through a Go template ('{{.Repository}}:{{.Tag}}'; "
                   "fields Repository, Tag, ID, Digest, Created, CreatedAt, Size, and "
                   "Platforms: those of a multi-platform image), or 'json'.")
@click.option("--no-trunc", is_flag=True, help="Show full image IDs.")
@click.pass_context
def images_cmd(ctx: click.Context, reference: str | None, quiet: bool, digests: bool,
               filters: tuple[str, ...], fmt: str | None, no_trunc: bool) -> None:
    """List the images in the local store (REFERENCE: only names matching it)."""
    from ocibuild.cli import gotemplate
    from ocibuild.local_images import filter_images, image_summaries, parse_filters

    wanted = parse_filters((*filters, *((f"reference={reference}",) if reference else ())))
    rows, warnings = image_summaries(_store(ctx))
    for warning in warnings:
        click.echo(f"ocibuild: warning: {printable(warning)}", err=True)
    rows = filter_images(rows, wanted)
    if quiet:
        for image_id in dict.fromkeys(r.id if no_trunc else r.short_id for r in rows):
            click.echo(image_id)
        return
    if fmt is not None and fmt.strip().lower() == "json":
        click.echo(json.dumps([_json_row(r) for r in rows], indent=4))
        return
    if fmt is not None and not gotemplate.is_table(fmt):
        for row in rows:
            click.echo("\t".join(printable(part) for part in
                                  gotemplate.render(fmt, _fields(row)).split("\t")))
        return
    if fmt is not None:
        body = gotemplate.table_body(fmt)
        table = [tuple(gotemplate.header(fmt).split("\t"))] + [
            tuple(gotemplate.render(body, _fields(r)).split("\t")) for r in rows]
        _print_table(table)
        return
    header = ("REPOSITORY", "TAG", *(("DIGEST",) if digests else ()), "IMAGE ID", "CREATED",
              "SIZE")
    table = [header]
    for r in rows:
        f = _fields(r)
        table.append((r.repository, r.tag, *((r.digest,) if digests else ()),
                      r.id if no_trunc else r.short_id, f["Created"], f["Size"]))
    _print_table(table)


def _print_table(table: list[tuple[str, ...]]) -> None:
    table = [tuple(printable(cell) for cell in row) for row in table]
    width = max(len(row) for row in table)
    widths = [max(len(row[i]) for row in table if i < len(row)) for i in range(width)]
    for row in table:
        click.echo("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
                   .rstrip())


# -- save / load ---------------------------------------------------------------------------
@click.command("save")
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="Write to this file (a directory for oci-dir).")
@click.option("--format", "fmt", type=click.Choice(["docker-archive", "oci-archive", "oci-dir"]),
              default="docker-archive", show_default=True,
              help="docker-archive (`docker load` reads it), oci-archive, or oci-dir (an OCI "
                   "image layout directory).")
@click.pass_context
def save_cmd(ctx: click.Context, images: tuple[str, ...], output: Path, fmt: str) -> None:
    """Write local images to a file: several names of one image (or, for the OCI formats,
    several images) go in one archive."""
    from ocibuild.local_images import save_images

    save_images(_store(ctx), images, output, fmt)


@click.command("load")
@click.argument("file", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("-i", "--input", "input_path", type=click.Path(exists=True, path_type=Path),
              help="Read this file (as the FILE argument; default: standard input).")
@click.pass_context
def load_cmd(ctx: click.Context, file: Path | None, input_path: Path | None) -> None:
    """Load images from a docker-archive, an oci-archive or an OCI layout directory into
    the local store, named as in the archive."""
    import shutil
    import sys

    from ocibuild.local_images import load_images
    from ocibuild.transports import scratch_dir

    path = file or input_path
    store = _store(ctx)
    if path is not None:
        loaded = load_images(store, path)
    elif sys.stdin.isatty():
        raise UsageError("load: name the archive (FILE or --input FILE) or pipe it in")
    else:
        with scratch_dir() as work:  # a tar stream cannot be read twice: keep it
            path = work / "stdin.tar"
            with path.open("wb") as f:
                shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
            loaded = load_images(store, path)
    for name, digest in loaded:
        click.echo(f"Loaded image: {printable(name) if name else digest}")


# -- copy ----------------------------------------------------------------------------------
_progress_option = click.option(
    "--progress", type=click.Choice(["auto", "plain", "tty", "rawjson", "json", "quiet"]),
    default="auto", show_default=True,
    help="How transfers are shown on stderr, as in `build`: each blob's bytes under the "
         "command's step (auto: tty on a terminal, else plain).")


@click.command("copy")
@click.argument("source")
@click.argument("destination")
@click.option("--dest-compress-format", "compression", type=click.Choice(["gzip", "zstd"]),
              help="Recompress layers in this format on the way.")
@click.option("--platform", "platform_text", metavar="OS/ARCH[/VARIANT]",
              help="Platform to pick from a multi-platform source (default: this host's).")
@click.option("-a", "--all", "all_platforms", is_flag=True,
              help="Copy a multi-platform image whole: its index and every platform's image.")
@_progress_option
@registry_options
@click.pass_context
def copy_cmd(ctx: click.Context, source: str, destination: str, compression: str | None,
             platform_text: str | None, all_platforms: bool, progress: str,
             insecure: tuple[str, ...],
             registry_ca: tuple[str, ...], authfile: str | None, jobs: int) -> None:
    """Copy an image between transports, as `skopeo copy` does.

    SOURCE and DESTINATION: oci:PATH[:TAG], oci-archive:FILE[:TAG],
    docker-archive:FILE[:NAME:TAG], docker://REF, or store:NAME (a bare NAME is the
    local store too).
    """
    from ocibuild.cli.registry_cmds import _options, _platform, _sources
    from ocibuild.progress.command import command_step
    from ocibuild.registry.client import ClientPool
    from ocibuild.transports import STORE, copy_image, parse_image_ref

    src, dest = parse_image_ref(source), parse_image_ref(destination)
    store = _store(ctx) if STORE in (src.transport, dest.transport) else None
    clients = ClientPool(_options(insecure, registry_ca, authfile, jobs))
    try:
        with command_step(progress, f"copy {source} {destination}") as step:
            result = copy_image(src, dest, store=store, platform=_platform(platform_text),
                                clients=clients, sources=_sources(ctx),
                                compression=compression, all_platforms=all_platforms,
                                progress=step)
    finally:
        clients.close()
    click.echo(f"{printable(destination)} {result.digest}")
