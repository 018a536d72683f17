"""`ocibuild import` and `ocibuild inspect` (of a local, layout or registry image)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ocibuild.cli.registry_flags import registry_connection_options
from ocibuild.errors import UsageError, printable
from ocibuild.oci import layout_ref, mediatypes


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


@click.command("import")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("-t", "--tag", "tag", required=True, help="Image name, NAME[:TAG].")
@click.option("--output", "output", help="Where to write: oci:PATH (default: the local store).")
@click.option("--compression", type=click.Choice(["gzip", "zstd", "none"]), default="gzip",
              show_default=True)
@click.option("--platform", "platform_text", metavar="OS/ARCH[/VARIANT]",
              help="The platform the files are for (default: this host's).")
@click.pass_context
def import_cmd(ctx: click.Context, source: Path, tag: str, output: str | None,
               compression: str, platform_text: str | None) -> None:
    """Turn a directory or a root-filesystem tarball into a one-layer image."""
    from ocibuild.cli.registry_cmds import _platform
    from ocibuild.image_import import import_rootfs, split_name
    from ocibuild.oci.layout import ImageLayout

    platform = _platform(platform_text)

    if output is not None:
        lref = layout_ref.parse(output)
        if lref.ref is not None:
            raise UsageError(f"--output {output}: give the tag with --tag, not in the path")
        result = import_rootfs(source, ImageLayout.init(lref.path), tag=tag,
                               compression=compression, platform=platform)
        where = f"oci:{lref.path}:{split_name(tag)[1]}"
    else:
        from ocibuild.cache.store import Store
        from ocibuild.failed_build import cleaned_up

        store = Store.open(Path(ctx.obj["root"]) if ctx.obj.get("root") else None)
        with cleaned_up(store):
            result = import_rootfs(source, store.layout, tag=None, compression=compression,
                                   platform=platform)
            store.tag(tag, result.manifest)
        where = tag
    click.echo(f"{where} {result.manifest.digest}")


def _load(ref_text: str, root: str | None, platform: Any = None
          ) -> tuple[str, Any, list[str], list[str]]:
    """(name shown, image, its names in the store: what RepoTags lists, and the
    platforms of the index it was picked from: none for a single image)."""
    from ocibuild.oci.image import load_image
    from ocibuild.oci.layout import ImageLayout

    if layout_ref.is_layout_ref(ref_text):
        lref = layout_ref.parse(ref_text)
        layout = ImageLayout.open(lref.path)
        return (str(lref), load_image(layout, lref.ref, platform), [],
                _index_platforms(layout, layout.resolve(lref.ref)))
    from ocibuild.cache.names import familiar_name
    from ocibuild.cache.store import Store
    from ocibuild.local_images import names_of

    store = Store.open(Path(root) if root else None)
    top = store.lookup(ref_text)
    if top is None:
        raise UsageError(f"{ref_text}: no such image in the local store ({store.root})")
    image = load_image(store.layout, top.digest, platform)
    tags = [familiar_name(n) for n in names_of(store, top) if "@" not in n]
    return ref_text, image, tags, _index_platforms(store.layout, top)


def _index_platforms(layout: Any, desc: Any) -> list[str]:
    """The platforms an index lists ([] when `desc` is a single image's manifest)."""
    from ocibuild.oci.manifest import Index

    if desc.media_type not in mediatypes.INDEX_TYPES:
        return []
    index = Index.from_bytes(layout.read_blob(desc.digest), desc.media_type)
    return [str(m.platform) for m in index.manifests if m.platform is not None]


def _load_remote(ref_text: str, options: Any, platform: Any) -> tuple[str, Any]:
    """A registry image's manifest and config, without its layers."""
    from ocibuild.registry.client import ClientPool
    from ocibuild.transports import opened_image, parse_image_ref

    clients = ClientPool(options)
    try:
        with opened_image(parse_image_ref(ref_text), clients=clients, platform=platform,
                          layers=False) as (_layout, image):
            return ref_text, image
    finally:
        clients.close()


def inspect_fields(name: str, img: Any, repo_tags: list[str]) -> dict[str, Any]:
    """The fields `inspect --format` templates name, as `docker image inspect` has them."""
    cfg = img.config
    config = dict(cfg.config)
    return {
        "Name": name,
        "Id": img.manifest.config.digest,
        "ID": img.manifest.config.digest,
        "Digest": img.descriptor.digest,
        "RepoTags": repo_tags,
        "MediaType": img.manifest.media_type,
        "Created": cfg.created,
        "Author": cfg.author,
        "Architecture": cfg.architecture,
        "Os": cfg.os,
        "Variant": cfg.variant,
        "Config": config,
        "Labels": config.get("Labels") or {},
        "Env": config.get("Env") or [],
        "Cmd": config.get("Cmd"),
        "Entrypoint": config.get("Entrypoint"),
        "User": config.get("User", ""),
        "WorkingDir": config.get("WorkingDir", ""),
        "Size": sum(layer.size for layer in img.manifest.layers),
        "RootFS": {"Type": "layers", "Layers": list(cfg.diff_ids)},
        "Layers": [layer.digest for layer in img.manifest.layers],
        "Annotations": dict(img.manifest.annotations),
    }


@click.command("inspect")
@click.argument("image")
@click.option("--format", "-f", "fmt", default="text", show_default=True,
              metavar="text|json|TEMPLATE",
              help="text, json, or a Go template of the fields docker's image inspect has "
                   "('{{.Id}}', '{{.Config.Env}}', '{{index .Labels \"k\"}}', "
                   "'{{json .Config}}').")
@click.option("--platform", "platform_text", metavar="OS/ARCH[/VARIANT]",
              help="Platform to pick from a multi-platform image (default: this host's).")
@registry_connection_options
@click.pass_context
def inspect_cmd(ctx: click.Context, image: str, fmt: str, platform_text: str | None,
                insecure: tuple[str, ...], registry_ca: tuple[str, ...],
                authfile: str | None) -> None:
    """Show an image's manifest and config: oci:PATH[:TAG], a local image NAME, or
    docker://REF (read from the registry: manifest and config only, no layers)."""
    if image.startswith("docker://"):
        from ocibuild.cli.registry_cmds import _options, _platform

        name, img = _load_remote(image, _options(insecure, registry_ca, authfile, 4),
                                 _platform(platform_text))
        repo_tags, platforms = [image.removeprefix("docker://")], []
    else:
        from ocibuild.cli.registry_cmds import _platform

        name, img, repo_tags, platforms = _load(image, ctx.obj.get("root"),
                                                _platform(platform_text))
    if fmt not in ("text", "json"):
        from ocibuild.cli import gotemplate

        click.echo(printable(gotemplate.render(fmt, inspect_fields(name, img, repo_tags))))
        return
    if fmt == "json":
        doc = {
            "name": name,
            "digest": img.descriptor.digest,
            "mediaType": img.manifest.media_type,
            "manifest": img.manifest.to_dict(),
            "config": img.config.to_dict(),
        }
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    cfg = img.config
    total = sum(layer.size for layer in img.manifest.layers)
    lines = [
        f"Image:      {name}",
        f"Digest:     {img.descriptor.digest}",
        f"Manifest:   {img.manifest.media_type}",
        f"Config:     {img.manifest.config.digest}",
        f"Platform:   {cfg.platform}",
        f"Created:    {cfg.created or '-'}",
    ]
    if platforms:  # picked from a multi-platform image
        lines.insert(2, f"Index:      {', '.join(platforms)}")
    for key in ("User", "WorkingDir", "Entrypoint", "Cmd"):
        if cfg.config.get(key):
            lines.append(f"{key + ':':<12}{json.dumps(cfg.config[key])}")
    for env in cfg.config.get("Env") or []:
        lines.append(f"Env:        {env}")
    lines.append(f"Layers:     {len(img.manifest.layers)} ({_human_size(total)} compressed)")
    history = [h for h in cfg.history if not h.empty_layer]
    for i, layer in enumerate(img.manifest.layers):
        kind = {mediatypes.OCI_LAYER_ZSTD: "zstd", mediatypes.OCI_LAYER: "tar"}.get(
            layer.media_type, "gzip")
        by = history[i].created_by if i < len(history) else ""
        lines.append(f"  {layer.digest[:19]}  {_human_size(layer.size):>9}  {kind:<4}  {by}")
    click.echo("\n".join(printable(line) for line in lines))  # the config quotes input
