"""`-o type=oci`: an OCI image layout directory, or the same packed as a tar file."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.atomic import work_dir_beside
from ocibuild.cache import names
from ocibuild.errors import OcibuildError
from ocibuild.exporter.options import wants_tar
from ocibuild.oci import layout_tar
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layout import REF_NAME, ImageLayout
from ocibuild.oci.manifest import Index, Manifest
from ocibuild.oci.mediatypes import INDEX_TYPES

if TYPE_CHECKING:
    from ocibuild.progress.transfer import StepProgress

CONTAINERD_NAME = "io.containerd.image.name"
TARBALL = "sending tarball"  # the status BuildKit shows a tar output's writing as


def copy_image(src: ImageLayout, dst: ImageLayout, manifest_desc: Descriptor) -> None:
    """Copy one image's blobs (layers, config, then manifest) from `src` into `dst`; an
    index's manifests first, then the index."""
    data = src.read_blob(manifest_desc.digest)
    if manifest_desc.media_type in INDEX_TYPES:
        for child in Index.from_bytes(data, manifest_desc.media_type).manifests:
            copy_image(src, dst, child)
        blobs: tuple[Descriptor, ...] = (manifest_desc,)
    else:
        manifest = Manifest.from_bytes(data, manifest_desc.media_type)
        blobs = (*manifest.layers, manifest.config, manifest_desc)
    for blob in blobs:
        if dst.has_blob(blob.digest):
            continue
        with src.open_blob(blob.digest, blob.size) as reader:
            dst.put_stream(reader, expected_digest=blob.digest, expected_size=blob.size)


def index_entries(manifest_desc: Descriptor, image_names: Sequence[str]) -> list[Descriptor]:
    """Index entries naming the image as buildx does: ref.name = tag, plus the full name."""
    if not image_names:
        return [manifest_desc]
    entries = []
    for full in image_names:
        tag = full.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2] or names.DEFAULT_TAG
        entries.append(manifest_desc.with_annotations(**{REF_NAME: tag, CONTAINERD_NAME: full}))
    return entries


def _is_tar_dest(dest: Path, attrs: dict[str, str]) -> bool:
    """tar= when given; else a tar for a dest named *.tar or an existing file, and a
    layout directory for any other dest."""
    asked = wants_tar(attrs, "--output type=oci")
    if asked is not None:
        return asked
    return dest.suffix == ".tar" or dest.is_file()


def export_oci(store_layout: ImageLayout, manifest_desc: Descriptor, dest: Path,
               attrs: dict[str, str], image_names: Sequence[str],
               progress: StepProgress | None = None) -> None:
    """Write the image as a layout directory or tar at `dest`; a tar's bytes are shown
    under `progress`."""
    if _is_tar_dest(dest, attrs):
        _export_tar(store_layout, manifest_desc, dest, image_names, progress)
    else:
        _export_dir(store_layout, manifest_desc, dest, image_names)


def _write_new_layout(store_layout: ImageLayout, manifest_desc: Descriptor, path: Path,
                      image_names: Sequence[str]) -> ImageLayout:
    layout = ImageLayout.init(path)
    copy_image(store_layout, layout, manifest_desc)
    layout.write_index(Index(tuple(index_entries(manifest_desc, image_names))))
    return layout


def _export_tar(store_layout: ImageLayout, manifest_desc: Descriptor, dest: Path,
                image_names: Sequence[str], progress: StepProgress | None = None) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = work_dir_beside(dest, "", shutil.rmtree)
    try:
        layout = _write_new_layout(store_layout, manifest_desc, work / "layout", image_names)
        shown = None
        if progress is not None:  # about the blobs' bytes: the tar's headers come on top
            size = sum(layout.blob_path(d).stat().st_size for d in layout.blobs())
            shown = progress.transfer(TARBALL, size, estimated=True)
        layout_tar.pack(layout, dest, shown)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _export_dir(store_layout: ImageLayout, manifest_desc: Descriptor, dest: Path,
                image_names: Sequence[str]) -> None:
    if dest.exists():
        # add to an existing layout: each blob and the new index.json are atomic writes
        if not (dest / "oci-layout").is_file():
            if not dest.is_dir() or any(dest.iterdir()):
                raise OcibuildError(
                    f"{dest}: exists and is not an OCI image layout; give an empty or new path"
                )
        layout = ImageLayout.init(dest)
        copy_image(store_layout, layout, manifest_desc)
        new = index_entries(manifest_desc, image_names)
        with layout.locked():
            idx = layout.index()
            replaced = {e.annotations.get(REF_NAME) for e in new} - {None}
            kept = [m for m in idx.manifests
                    if m.annotations.get(REF_NAME) not in replaced
                    and not (REF_NAME not in m.annotations and m.digest == manifest_desc.digest)]
            layout.write_index(Index((*kept, *new), idx.media_type, idx.annotations))
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = work_dir_beside(dest, dest.name + "-", shutil.rmtree)
    try:
        _write_new_layout(store_layout, manifest_desc, tmp, image_names)
        os.chmod(tmp, 0o755)
        os.rename(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
        raise
