"""`ocibuild build`: the flags a `docker buildx build` user types."""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING

import click

from ocibuild.cli.registry_flags import registry_connection_options
from ocibuild.errors import OcibuildError, UsageError

if TYPE_CHECKING:
    from ocibuild.registry import RegistryOptions


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    import os

    out: dict[str, str] = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not key:
            raise UsageError(f"{what} {text!r}: expected KEY=VALUE")
        if not sep:  # docker takes the value from the environment
            if key not in os.environ:
                continue
            value = os.environ[key]
        out[key] = value
    return out


def _registry_options(insecure: tuple[str, ...], registry_ca: tuple[str, ...],
                      authfile: str | None) -> RegistryOptions | None:
    """None when no registry flag is given: the registry client (slow to import) then
    loads only if a build really reaches a registry."""
    if not (insecure or registry_ca or authfile):
        return None
    from ocibuild.registry import RegistryOptions

    return RegistryOptions.build(insecure=insecure, ca_files=registry_ca, authfile=authfile)


@click.command("build")
@click.argument("context", type=click.Path(file_okay=False))
@click.option("-f", "--file", "dockerfile", help="The Dockerfile (default CONTEXT/Dockerfile).")
@click.option("-t", "--tag", "tags", multiple=True, help="Name the image (repeatable).")
@click.option("--target", help="Build this stage (and what it needs) only.")
@click.option("--build-arg", "build_args", multiple=True, help="KEY=VALUE for an ARG.")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE label on the image.")
@click.option("-o", "--output", "outputs", multiple=True,
              help="type=oci|docker|local,dest=PATH (default: the local store).")
@click.option("--secret", "secrets", multiple=True, help="id=NAME,src=FILE or id=NAME,env=VAR.")
@click.option("--ssh", "ssh", multiple=True, help="default (forwards SSH_AUTH_SOCK) or ID=SOCKET.")
@click.option("--progress", type=click.Choice(["auto", "plain", "quiet", "tty"]), default="auto",
              show_default=True)
@click.option("--no-cache", is_flag=True, help="Run every step again.")
@click.option("--no-cache-filter", "no_cache_filter", multiple=True,
              help="Run the steps of this stage again (repeatable).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Steps run at once (default: CPUs).")
@click.option("--platform", help="Target platform (os/arch[/variant]).")
@click.option("--snapshotter", type=click.Choice(["auto", "overlay", "native"]), default="auto",
              show_default=True)
@click.option("--iidfile", type=click.Path(dir_okay=False), help="Write the image ID here.")
@click.option("--metadata-file", "metadata_file", type=click.Path(dir_okay=False),
              help="Write buildx-style build metadata (JSON) here.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@click.option("--cache-from", "cache_from", multiple=True,
              metavar="type=registry,ref=REF | type=local,src=DIR",
              help="Reuse the records of this cache (repeatable).")
@click.option("--cache-to", "cache_to", multiple=True,
              metavar="type=registry,ref=REF[,mode=min|max] | type=local,dest=DIR",
              help="Write the build's cache here (repeatable).")
@click.option("--explain-cache", "explain_cache", is_flag=True,
              help="For every step that missed the cache, print what changed.")
@click.option("--build-context", "build_contexts", multiple=True,
              metavar="NAME=docker-image://REF|oci-layout://PATH[:TAG]|DIR",
              help="An extra context FROM NAME / --from=NAME use (repeatable).")
@click.option("--push", is_flag=True, help="Push the image to every -t name.")
@click.option("--pull", is_flag=True, help="Check the registry for a newer base image.")
@registry_connection_options
@click.pass_context
def build_cmd(ctx: click.Context, context: str, dockerfile: str | None, tags: tuple[str, ...],
              target: str | None, build_args: tuple[str, ...], labels: tuple[str, ...],
              outputs: tuple[str, ...], secrets: tuple[str, ...], ssh: tuple[str, ...],
              progress: str, no_cache: bool, no_cache_filter: tuple[str, ...],
              jobs: int | None, platform: str | None, snapshotter: str, iidfile: str | None,
              metadata_file: str | None, quiet: bool, cache_from: tuple[str, ...],
              cache_to: tuple[str, ...], explain_cache: bool, build_contexts: tuple[str, ...],
              push: bool, pull: bool, insecure: tuple[str, ...],
              registry_ca: tuple[str, ...], authfile: str | None) -> None:
    """Build an image from a Dockerfile and a context directory."""
    from ocibuild.builder import build
    from ocibuild.progress.plain import PlainRenderer
    from ocibuild.solver.solve import StepFailedError

    renderer = None if quiet or progress == "quiet" else PlainRenderer(sys.stderr)
    try:
        report = build(
            context, dockerfile=dockerfile, tags=tags, target=target,
            build_args=_pairs(build_args, "--build-arg"), labels=_pairs(labels, "--label"),
            outputs=outputs, root=ctx.obj.get("root"), jobs=jobs, no_cache=no_cache,
            no_cache_filter=no_cache_filter, secrets=secrets, ssh=ssh, platform=platform,
            snapshotter=snapshotter, progress=renderer, iidfile=iidfile,
            metadata_file=metadata_file, cache_from=cache_from, cache_to=cache_to,
            explain_cache=explain_cache, build_contexts=build_contexts, push=push, pull=pull,
            registry=_registry_options(insecure, registry_ca, authfile))
    except StepFailedError as exc:
        if renderer is not None:
            sys.stderr.write("\n" + renderer.summary() + "\n")
        raise OcibuildError(f"failed to solve: {exc.message}") from None
    except OcibuildError as exc:
        from ocibuild.frontend.dockerfile.errors import DockerfileError

        if isinstance(exc, DockerfileError):
            raise OcibuildError(exc.render(), exit_code=exc.exit_code) from None
        raise
    for warning in report.warnings:
        click.echo(warning, err=True)
    for explanation in report.cache_explanations:
        click.echo(explanation.render(), err=True)
    for cache in report.cache_exports:
        click.echo(f"cache written to {cache.destination} ({cache.manifest_digest}): "
                   f"{cache.records} records, {cache.layers} layers ({cache.uploaded} sent, "
                   f"{cache.mounted} mounted, {cache.skipped} already there)", err=True)
    if quiet:
        click.echo(report.image_id)
    else:
        names = ", ".join(report.names)
        click.echo(f"writing image {report.manifest_digest}"
                   + (f" ({names})" if names else ""), err=True)
        for pushed in report.pushed:
            click.echo(f"pushed {pushed}", err=True)
        click.echo(report.image_id)
    # The process ends after this command: the collection at interpreter exit would
    # scan every object (~15 ms) to free nothing the exit does not free anyway.
    gc.freeze()
