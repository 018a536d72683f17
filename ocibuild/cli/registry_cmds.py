"""`ocibuild pull`, `push`, `login` and `logout`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ocibuild.cli.registry_flags import registry_connection_options, registry_options
from ocibuild.errors import OcibuildError, UsageError
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.platform import Platform
from ocibuild.progress.command import MODES as PROGRESS_MODES
from ocibuild.progress.command import command_step
from ocibuild.reference import normalize_registry
from ocibuild.registry import (
    BlobSources,
    ClientPool,
    Credentials,
    RegistryClient,
    RegistryOptions,
    parse_reference,
    push_image,
    remove_credentials,
    store_credentials,
)
from ocibuild.registry.export import SOURCES_DB
from ocibuild.registry.push import root_descriptor

if TYPE_CHECKING:
    from ocibuild.oci.image import Image

__all__ = ["registry_connection_options", "registry_options"]


def _options(insecure: tuple[str, ...], registry_ca: tuple[str, ...], authfile: str | None,
             jobs: int) -> RegistryOptions:
    return RegistryOptions.build(insecure=insecure, ca_files=registry_ca, authfile=authfile,
                                 jobs=jobs)


def _state_root(ctx: click.Context) -> Path:
    """The store root: --root / $OCIBUILD_ROOT, else the default."""
    from ocibuild import store_paths  # not ocibuild.cache: a push opens no store

    root = (ctx.obj or {}).get("root")
    return Path(root or store_paths.default_root())


def _open_store(ctx: click.Context) -> Any:
    from ocibuild.cache.store import Store

    return Store.open(_state_root(ctx))


def _sources(ctx: click.Context) -> BlobSources:
    try:
        return BlobSources(_state_root(ctx) / SOURCES_DB)
    except OSError:
        return BlobSources()  # an unwritable state directory only costs the mount hints


progress_option = click.option(
    "--progress", type=click.Choice(PROGRESS_MODES), default="auto", show_default=True,
    help="How transfers are shown on stderr, as in `build`: each blob's bytes under the "
         "command's step (auto: tty on a terminal, else plain).")


def _split_oci(text: str) -> tuple[Path, str | None]:
    """`oci:PATH[:TAG]` → (PATH, TAG)."""
    body = text[len("oci:"):]
    slash = body.rfind("/")
    colon = body.rfind(":")
    if colon > slash and colon > 0:
        return Path(body[:colon]), body[colon + 1:] or None
    return Path(body), None


@click.command("pull")
@click.argument("reference")
@click.option("--output", "-o", "output", metavar="oci:PATH[:TAG]",
              help="Write into this OCI layout instead of the local store.")
@click.option("--platform", "platform_text", metavar="OS/ARCH[/VARIANT]",
              help="Platform to pick from a multi-platform image (default: this host's).")
@click.option("--all-platforms", "all_platforms", is_flag=True,
              help="Pull the whole image index: every platform's image.")
@progress_option
@registry_options
@click.pass_context
def pull_cmd(ctx: click.Context, reference: str, output: str | None,
             platform_text: str | None, all_platforms: bool, progress: str,
             insecure: tuple[str, ...], registry_ca: tuple[str, ...], authfile: str | None,
             jobs: int) -> None:
    """Pull REFERENCE from its registry (blobs already present are not fetched)."""
    from ocibuild.registry.pull import pull  # not loaded by the other commands

    ref = parse_reference(reference)
    platform = _platform(platform_text)
    options = _options(insecure, registry_ca, authfile, jobs)
    if output is not None and not output.startswith("oci:"):
        raise UsageError(f"--output {output!r}: expected oci:PATH[:TAG]")
    if all_platforms:
        if platform is not None:
            raise UsageError("--all-platforms and --platform: give one of them")
        _pull_all(ctx, ref, output, progress, ClientPool(options))
        return
    clients = ClientPool(options)
    try:
        image: Image
        with command_step(progress, f"pull {ref}") as step:
            if output is not None:
                path, tag = _split_oci(output)
                layout = ImageLayout.init(path)
                image = pull(ref, layout, platform=platform, clients=clients,
                             sources=_sources(ctx), progress=step)
                layout.tag(tag or ref.tag or "latest", image.descriptor)
            else:
                from ocibuild.registry.resolve import pull_into_store

                image = pull_into_store(ref, _open_store(ctx), platform, clients=clients,
                                        sources=_sources(ctx), progress=step)
    finally:
        clients.close()
    click.echo(f"{ref}: pulled {image.digest}")


def _pull_all(ctx: click.Context, ref: Any, output: str | None, progress: str,
              clients: ClientPool) -> None:
    """`pull --all-platforms`: `copy --all` from the registry, named as a pull names."""
    from ocibuild.transports import copy_image, parse_image_ref

    if output is not None:
        path, tag = _split_oci(output)
        dest = parse_image_ref(f"oci:{path}:{tag or ref.tag or 'latest'}")
    else:
        dest = parse_image_ref(f"store:{ref}")
    try:
        with command_step(progress, f"pull {ref}") as step:
            result = copy_image(parse_image_ref(f"docker://{ref}"), dest,
                                store=_open_store(ctx) if output is None else None,
                                clients=clients, sources=_sources(ctx), all_platforms=True,
                                progress=step)
    finally:
        clients.close()
    click.echo(f"{ref}: pulled {result.digest}")


def _platform(text: str | None) -> Platform | None:
    if not text:
        return None
    try:
        return Platform.parse(text)
    except ValueError as exc:
        raise UsageError(f"--platform: {exc}") from None


@click.command("push")
@click.argument("source")
@click.argument("destinations", nargs=-1)
@progress_option
@registry_options
@click.pass_context
def push_cmd(ctx: click.Context, source: str, destinations: tuple[str, ...], progress: str,
             insecure: tuple[str, ...], registry_ca: tuple[str, ...], authfile: str | None,
             jobs: int) -> None:
    """Push SOURCE (oci:PATH[:TAG] or a local image name) to DESTINATIONS.

    With no destination, a local image is pushed to the reference it is named by.
    Several destinations push once per repository and tag each.
    """
    if source.startswith("oci:"):
        path, tag = _split_oci(source)
        try:
            layout = ImageLayout.open(path)
        except OcibuildError as exc:
            raise UsageError(f"push {source}: {exc.message}") from None
        desc = root_descriptor(layout, tag)
        if not destinations:
            raise UsageError(f"push {source}: name a destination reference")
    else:
        store = _open_store(ctx)
        layout = store.layout
        found = store.lookup(source)  # a multi-platform image: its index and all it names
        if found is None:
            raise UsageError(f"push: no local image named {source!r}")
        desc = found
        destinations = destinations or (source,)
    refs = [parse_reference(d) for d in destinations]
    clients = ClientPool(_options(insecure, registry_ca, authfile, jobs))
    try:
        with command_step(progress, "push " + ", ".join(map(str, refs))) as step:
            report = push_image(layout, desc, refs, clients=clients, sources=_sources(ctx),
                                progress=step)
    finally:
        clients.close()
    for name in report.references:
        click.echo(f"pushed {name}")
    click.echo(f"blobs: {report.uploaded} uploaded ({report.bytes_uploaded} bytes), "
               f"{report.mounted} mounted, {report.skipped} already present"
               + (f"; {report.manifests_present} of {len(report.references)} names already "
                  "held the image" if report.manifests_present else ""), err=True)


@click.command("login")
@click.argument("registry")
@click.option("--username", "-u", help="User name (asked for when missing).")
@click.option("--password", "-p", help="Password or token (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@registry_options
def login_cmd(registry: str, username: str | None, password: str | None,
              password_stdin: bool, insecure: tuple[str, ...], registry_ca: tuple[str, ...],
              authfile: str | None, jobs: int) -> None:
    """Check credentials against REGISTRY and save them for later commands."""
    host = normalize_registry(registry)
    if password_stdin:
        if password:
            raise UsageError("login: --password and --password-stdin exclude each other")
        password = sys.stdin.readline().rstrip("\r\n")
    if not username:
        username = click.prompt("Username")
    if password is None:
        password = click.prompt("Password", hide_input=True)
    options = _options(insecure, registry_ca, None, jobs)
    client = RegistryClient(host, options)
    client.credentials_override = Credentials(username or "", password or "")
    try:
        client.check_credentials(f"login {host}")
    finally:
        client.close()
    where = store_credentials(host, Credentials(username or "", password or ""),
                              Path(authfile) if authfile else None)
    click.echo(f"Login succeeded ({host}; saved in {where})")


@click.command("logout")
@click.argument("registry")
@click.option("--authfile", type=click.Path(dir_okay=False),
              help="Remove the credentials from this file.")
def logout_cmd(registry: str, authfile: str | None) -> None:
    """Forget the saved credentials for REGISTRY."""
    host = normalize_registry(registry)
    if remove_credentials(host, Path(authfile) if authfile else None):
        click.echo(f"Removed login credentials for {host}")
    else:
        raise OcibuildError(f"logout: not logged in to {host}")
