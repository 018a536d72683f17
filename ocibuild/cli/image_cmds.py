"""`ocibuild import` and `ocibuild inspect`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

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
@click.pass_context
def import_cmd(ctx: click.Context, source: Path, tag: str, output: str | None,
               compression: str) -> None:
    """Turn a directory or a root-filesystem tarball into a one-layer image."""
    from ocibuild.image_import import import_rootfs, split_name
    from ocibuild.oci.layout import ImageLayout

    if output is not None:
        lref = layout_ref.parse(output)
        if lref.ref is not None:
            raise UsageError(f"--output {output}: give the tag with --tag, not in the path")
        result = import_rootfs(source, ImageLayout.init(lref.path), tag=tag,
                               compression=compression)
        where = f"oci:{lref.path}:{split_name(tag)[1]}"
    else:
        from ocibuild.cache.failed_build import cleaned_up
        from ocibuild.cache.store import Store

        store = Store.open(Path(ctx.obj["root"]) if ctx.obj.get("root") else None)
        with cleaned_up(store):
            result = import_rootfs(source, store.layout, tag=None, compression=compression)
            store.tag(tag, result.manifest)
        where = tag
    click.echo(f"{where} {result.manifest.digest}")


def _load(ref_text: str, root: str | None) -> tuple[str, Any]:
    from ocibuild.oci.image import load_image
    from ocibuild.oci.layout import ImageLayout

    if layout_ref.is_layout_ref(ref_text):
        lref = layout_ref.parse(ref_text)
        return str(lref), load_image(ImageLayout.open(lref.path), lref.ref)
    from ocibuild.cache.store import Store

    store = Store.open(Path(root) if root else None)
    image = store.resolve_image(ref_text)
    if image is None:
        raise UsageError(f"{ref_text}: no such image in the local store ({store.root})")
    return ref_text, image


@click.command("inspect")
@click.argument("image")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.pass_context
def inspect_cmd(ctx: click.Context, image: str, fmt: str) -> None:
    """Show an image's manifest and config: oci:PATH[:TAG] or a local image NAME."""
    name, img = _load(image, ctx.obj.get("root"))
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
