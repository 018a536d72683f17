"""`ocibuild import`: a directory or a root-filesystem tarball becomes a one-layer image."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ocibuild.errors import OcibuildError, is_disk_full, os_error
from ocibuild.idmap import IdMap, IdRange
from ocibuild.oci import mediatypes
from ocibuild.oci.config import History, ImageConfig
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.image import write_image
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.platform import Platform
from ocibuild.oci.platform import host as host_platform

if TYPE_CHECKING:
    from ocibuild.oci.layer import LayerInfo

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONTAINERD_NAME = "io.containerd.image.name"


@dataclass(frozen=True)
class ImageDescription:
    """What a recipe says about the image it imports: labels, the default command and
    the history entry naming how the root filesystem was made."""

    created_by: str = "ocibuild import"
    comment: str = ""
    labels: dict[str, str] | None = None
    cmd: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportResult:
    """What `ocibuild import` made: the image's manifest, its config's digest and its one layer."""
    manifest: Descriptor
    config_digest: str
    layer: Descriptor
    diff_id: str


def source_date_epoch() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise OcibuildError(f"SOURCE_DATE_EPOCH={value!r} is not a whole number of seconds") \
            from None


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def import_idmap() -> IdMap | None:
    """How host owners of an imported tree map to image owners.

    As root, ids are kept. As another user, the tree is taken as that user's view in
    its user namespace: the user's own files become root's, and files owned by its
    subordinate ids keep the ids they have inside the namespace.
    """
    if os.geteuid() == 0:
        return None
    try:
        from ocibuild.sandbox import current_idmap
    except ImportError:
        uid, gid = os.geteuid(), os.getegid()
        return IdMap((IdRange(0, uid, 1),), (IdRange(0, gid, 1),))
    return current_idmap()


def split_name(name: str) -> tuple[str, str]:
    """'busybox:1.36' -> ('busybox', '1.36'); a name without a tag gets 'latest'."""
    base, _, digest = name.partition("@")
    slash, colon = base.rfind("/"), base.rfind(":")
    if colon > slash:
        repo, tag = base[:colon], base[colon + 1:]
    else:
        repo, tag = base, "latest"
    if not repo or not tag or digest:
        raise OcibuildError(f"invalid image name {name!r}: use NAME[:TAG]")
    return repo, tag


def _recompress_tar(src: BinaryIO, out: BinaryIO, compression: str) -> LayerInfo:
    """Take a root-filesystem tar as the layer, byte for byte once decompressed."""
    from ocibuild.oci.compression import open_uncompressed
    from ocibuild.oci.layer import LayerInfo
    from ocibuild.oci.layerstream import LayerSink

    plain = open_uncompressed(src)
    sink = LayerSink(out, compression)
    try:
        while chunk := plain.read(1 << 20):
            sink.write(chunk)
    except BaseException:
        sink.abort()
        raise
    result = sink.close()
    return LayerInfo(result.digest, result.diff_id, result.size,
                     mediatypes.oci_layer_type(compression), compression)


def import_rootfs(source: Path, layout: ImageLayout, *, tag: str | None,
                  compression: str = mediatypes.GZIP,
                  platform: Platform | None = None,
                  description: ImageDescription | None = None) -> ImportResult:
    """Write `source` (a directory or a tar, compressed or not) as a one-layer image."""
    from ocibuild.oci import layer as layer_mod

    if not source.exists():
        raise OcibuildError(f"{source}: no such file or directory")
    epoch = source_date_epoch()
    try:
        with layout.blob_writer() as blob:
            if source.is_dir():
                info = layer_mod.write_layer_from_dir(
                    source, blob, compression=compression, source_date_epoch=epoch,
                    id_map=import_idmap(),
                )
            else:
                with open(source, "rb") as src:
                    info = _recompress_tar(src, blob, compression)
            blob.commit()
    except OSError as exc:
        if is_disk_full(exc):
            raise os_error(exc, f"import {source}: cannot write", layout.path) from exc
        raise os_error(exc, f"import {source}: cannot read") from exc
    layer_desc = info.descriptor()
    created = rfc3339(epoch if epoch is not None else time.time())
    plat = platform or host_platform()
    describe = description or ImageDescription()
    comment = describe.comment or \
        ("from a directory" if source.is_dir() else "from a tar archive")
    exec_config: dict[str, object] = {"Env": [f"PATH={DEFAULT_PATH}"]}
    if describe.cmd:
        exec_config["Cmd"] = list(describe.cmd)
    if describe.labels:
        exec_config["Labels"] = dict(sorted(describe.labels.items()))
    config = ImageConfig(
        architecture=plat.architecture,
        os=plat.os,
        variant=plat.variant,
        created=created,
        config=exec_config,
        diff_ids=(info.diff_id,),
        history=(History(created=created, created_by=describe.created_by, comment=comment),),
    )
    tags: list[str] = []
    annotations: dict[str, str] = {}
    if tag:
        repo, t = split_name(tag)
        tags.append(t)
        annotations[CONTAINERD_NAME] = f"{repo}:{t}"
    desc = write_image(layout, config, [layer_desc])
    for t in tags:
        layout.tag(t, desc.with_annotations(**annotations))
    return ImportResult(desc, config.digest, layer_desc, info.diff_id)
