"""`ocibuild cache du`, `ocibuild cache prune` and `ocibuild cache check`."""

from __future__ import annotations

import time

import click

from ocibuild.cache.units import human_ago, human_size, parse_duration, parse_size


def _store(ctx: click.Context):  # type: ignore[no-untyped-def]
    from ocibuild.cache.store import Store

    return Store.open(ctx.obj.get("root") if ctx.obj else None)


def _print_table(table: list[tuple[str, ...]]) -> None:
    from ocibuild.errors import printable

    table = [tuple(printable(cell) for cell in row) for row in table]  # steps' names
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@click.group("cache")
def cache_group() -> None:
    """Inspect and clean the build cache."""


@cache_group.command("du")
@click.option("--verbose", is_flag=True, help="Show every item with its description.")
@click.pass_context
def du_cmd(ctx: click.Context, verbose: bool) -> None:
    """Show the disk space the build cache uses."""
    from ocibuild.cache.prune import usage

    items = usage(_store(ctx))
    now = time.time()
    table: list[tuple[str, ...]] = [("ID", "TYPE", "RECLAIMABLE", "SIZE", "LAST ACCESSED")]
    if verbose:
        table[0] = (*table[0], "DESCRIPTION")
    for item in sorted(items, key=lambda i: -i.size):
        row = (item.id.removeprefix("sha256:")[:25], item.kind, str(not item.in_use).lower(),
               human_size(item.size), human_ago(now - item.last_used))
        table.append((*row, item.description) if verbose else row)
    _print_table(table)
    reclaimable = sum(i.size for i in items if not i.in_use)
    click.echo(f"Reclaimable:\t{human_size(reclaimable)}")
    click.echo(f"Total:\t\t{human_size(sum(i.size for i in items))}")


@cache_group.command("prune")
@click.option("-a", "--all", "all_", is_flag=True,
              help="Also remove what tagged images use (records, snapshots).")
@click.option("--keep-storage", metavar="SIZE", help="Keep at most SIZE of cache (e.g. 2GB).")
@click.option("--filter", "filters", multiple=True, metavar="until=DURATION",
              help="Only remove items unused for DURATION (e.g. until=24h).")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation (never asks).")
@click.pass_context
def prune_cmd(ctx: click.Context, all_: bool, keep_storage: str | None,
              filters: tuple[str, ...], force: bool) -> None:
    """Remove build cache not used by tagged images (everything with --all)."""
    from ocibuild.cache.prune import prune
    from ocibuild.errors import UsageError

    until = None
    for item in filters:
        key, sep, value = item.partition("=")
        if key != "until" or not sep:
            raise UsageError(f"--filter {item}: only until=DURATION is supported")
        until = parse_duration(value)
    report = prune(_store(ctx), all=all_, until=until,
                   keep_storage=parse_size(keep_storage) if keep_storage else None)
    for item in report.removed:
        click.echo(f"deleted {item.kind} {item.id.removeprefix('sha256:')[:25]}")
    click.echo(f"Total:\t{human_size(report.reclaimed)} "
               f"({len(report.removed)} items, {report.blobs_removed} blobs)")


@cache_group.command("check")
@click.option("--repair", is_flag=True,
              help="Remove what is broken (never good data) and what dead builds left.")
@click.pass_context
def check_cmd(ctx: click.Context, repair: bool) -> None:
    """Verify the store: blobs' digests, records, snapshots, the image index, leftovers.

    Prints one line per problem, then a summary. Exit status 0: the store is clean (with
    --repair: every problem found was repaired); 1: problems remain."""
    from ocibuild.cache.check import check_root, summary
    from ocibuild.cache.store import default_root

    root = ctx.obj.get("root") if ctx.obj else None
    report = check_root(default_root() if root is None else root, repair=repair)
    for problem in report.problems:
        click.echo(problem.line())
    if report.trash_entries:
        click.echo(f"trash: {report.trash_entries} finished steps' directories "
                   + ("deleted" if repair else "not yet deleted (the next build or "
                      "cache prune deletes them)"))
    click.echo(summary(report))
    ctx.exit(1 if report.unrepaired else 0)
