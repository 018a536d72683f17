"""Reading what a build wrote into an OCI layout: the image's config and the files its
layers make (whiteouts applied), straight from the tar streams."""

from __future__ import annotations

import gzip
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard


@dataclass(frozen=True)
class Entry:
    info: tarfile.TarInfo
    data: bytes | None  # regular files only


@dataclass(frozen=True)
class Image:
    manifest_digest: str
    manifest: dict[str, Any]
    config: dict[str, Any]
    layer_digests: tuple[str, ...]
    files: dict[str, Entry]  # "etc/passwd" -> entry, the final view of all layers
    top: dict[str, Entry]  # what the last layer holds


def blob(layout: Path, digest: str) -> Path:
    algo, _, hexpart = digest.partition(":")
    return layout / "blobs" / algo / hexpart


def open_layer(path: Path) -> Any:
    head = path.read_bytes()[:4]
    if head[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if head == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))  # noqa: SIM115
    return open(path, "rb")  # noqa: SIM115


def _entries(path: Path) -> dict[str, Entry]:
    out: dict[str, Entry] = {}
    with open_layer(path) as stream, tarfile.open(fileobj=stream, mode="r|") as tf:
        for info in tf:
            data = tf.extractfile(info).read() if info.isreg() else None  # type: ignore[union-attr]
            out[info.name.rstrip("/").removeprefix("./")] = Entry(info, data)
    return out


def load(layout: Path, manifest_digest: str | None = None) -> Image:
    """The image `manifest_digest` (default: the layout's only manifest)."""
    if manifest_digest is None:
        index = json.loads((layout / "index.json").read_text())
        manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads(blob(layout, manifest_digest).read_text())
    config = json.loads(blob(layout, manifest["config"]["digest"]).read_text())
    files: dict[str, Entry] = {}
    top: dict[str, Entry] = {}
    for layer in manifest["layers"]:
        top = _entries(blob(layout, layer["digest"]))
        for name in top:
            parent, _, base = name.rpartition("/")
            if base == ".wh..wh..opq":
                prefix = f"{parent}/"
                for old in [k for k in files if k.startswith(prefix)]:
                    del files[old]
            elif base.startswith(".wh."):
                gone = f"{parent}/{base[4:]}" if parent else base[4:]
                for old in [k for k in files if k == gone or k.startswith(gone + "/")]:
                    del files[old]
        files.update({k: v for k, v in top.items() if not k.rpartition("/")[2].startswith(
            ".wh.")})
    return Image(manifest_digest, manifest, config,
                 tuple(layer["digest"] for layer in manifest["layers"]), files, top)
