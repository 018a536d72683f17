"""The registry side of `--push` and `-o type=image,name=REF[,REF2],push=true`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layout import ImageLayout
from ocibuild.reference import parse_reference
from ocibuild.registry.blob_sources import BlobSources
from ocibuild.registry.client import ClientPool
from ocibuild.registry.options import RegistryOptions
from ocibuild.registry.push import PushReport, push_image

if TYPE_CHECKING:
    from ocibuild.progress.transfer import StepProgress

SOURCES_DB = "registry-sources.sqlite"


def store_sources(store: Any) -> BlobSources | None:
    """The blob-location record kept beside a store (None for a store without a root)."""
    root = getattr(store, "root", None)
    if root is None:
        return None
    try:
        return BlobSources(Path(root) / SOURCES_DB)
    except OSError:
        return BlobSources()


def push_names(layout: ImageLayout, desc: Descriptor, names: Sequence[str], *,
               options: RegistryOptions | None = None, store: Any = None,
               progress: StepProgress | None = None,
               clients: ClientPool | None = None) -> PushReport:
    """Push the image `desc` in `layout` to every name (full references, e.g. what
    `-t` and `name=` gave); blobs go once per repository, then each tag. Uploads and
    manifests are shown under `progress`. `clients`: the caller's (made with the same
    `options`, left open); else the push makes its own."""
    refs = [parse_reference(n) for n in dict.fromkeys(names)]
    own = clients is None
    pool = ClientPool(options) if clients is None else clients
    try:
        return push_image(layout, desc, refs, clients=pool, sources=store_sources(store),
                          progress=progress)
    finally:
        if own:
            pool.close()
