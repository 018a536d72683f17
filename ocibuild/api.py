"""The public API's image operations besides `build`: pull, push, import a root
filesystem, tag, list. Each opens the store at `root` (default: $OCIBUILD_ROOT, else
~/.local/share/ocibuild), as the commands of the same names do, and raises only
`OcibuildError`s.

`ocibuild/__init__.py` exports these; this module and everything it imports load on
first use, so that `import ocibuild` stays light.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.errors import OcibuildError, UsageError

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.local_images import ImageSummary
    from ocibuild.oci.descriptor import Descriptor
    from ocibuild.oci.platform import Platform
    from ocibuild.progress.events import Sink as ProgressCallback
    from ocibuild.progress.transfer import StepProgress
    from ocibuild.registry.options import RegistryOptions

__all__ = ["PushResult", "images", "import_rootfs", "pull", "push", "tag"]

@dataclass(frozen=True)
class PushResult:
    """What `push` did: the image's `digest`, the `references` it was pushed to
    (`NAME:TAG@DIGEST`), and how its blobs went: `uploaded` (`bytes_uploaded` bytes),
    `mounted` from another repository of the registry, or `skipped` (already there)."""

    digest: str
    references: tuple[str, ...]
    uploaded: int
    mounted: int
    skipped: int
    bytes_uploaded: int


def pull(reference: str, *, platform: str | None = None,
         root: str | os.PathLike[str] | None = None, registry: RegistryOptions | None = None,
         progress: ProgressCallback | None = None) -> ImageSummary:
    """Pull `reference` (e.g. `busybox:1.36`, `registry.example:5000/app@sha256:...`)
    into the store, named by its full reference; blobs the store has are not fetched.
    `platform` (`os/arch[/variant]`, default this host's) picks the image from a
    multi-platform index. `progress` receives a step's events and one status per blob.

    Raises `UsageError` for a bad reference or platform, `RegistryError` (with its
    HTTP `status`) when the registry refuses or cannot be reached."""
    from ocibuild.reference import parse_reference
    from ocibuild.registry.client import ClientPool
    from ocibuild.registry.resolve import pull_into_store

    ref = parse_reference(reference)
    wanted = _platform(platform)
    store = _open(root)
    clients = ClientPool(registry)
    try:
        with _step(progress, f"pull {ref}") as step:
            image = pull_into_store(ref, store, wanted, clients=clients, progress=step)
    finally:
        clients.close()
    return _summary(store, str(ref), image.descriptor)


def push(image: str, destinations: Sequence[str] = (), *,
         root: str | os.PathLike[str] | None = None, registry: RegistryOptions | None = None,
         progress: ProgressCallback | None = None) -> PushResult:
    """Push the store's `image` (a name, digest or image ID) to each reference in
    `destinations` (default: the name `image` gives). Blobs go once per repository;
    those the registry has are skipped, those in another of its repositories mounted.

    Raises `ImageNotFoundError` when the store has no such image, `UsageError` for a bad
    reference, `RegistryError` (with its HTTP `status`) when the registry refuses."""
    if isinstance(destinations, str):
        destinations = (destinations,)
    from ocibuild.local_images import ImageNotFoundError
    from ocibuild.reference import parse_reference
    from ocibuild.registry.client import ClientPool
    from ocibuild.registry.export import store_sources
    from ocibuild.registry.push import push_image

    store = _open(root)
    found = store.lookup(image)  # a multi-platform image: its index and all it names
    if found is None:
        raise ImageNotFoundError(f"{image}: no such image in the local store ({store.root})")
    refs = [parse_reference(d) for d in dict.fromkeys(destinations or (image,))]
    clients = ClientPool(registry)
    try:
        with _step(progress, f"push {', '.join(map(str, refs))}") as step:
            report = push_image(store.layout, found, refs, clients=clients,
                                sources=store_sources(store), progress=step)
    finally:
        clients.close()
    return PushResult(report.digest, tuple(report.references), report.uploaded,
                      report.mounted, report.skipped, report.bytes_uploaded)


def import_rootfs(source: str | os.PathLike[str], name: str, *,
                  root: str | os.PathLike[str] | None = None, compression: str = "gzip",
                  platform: str | None = None) -> ImageSummary:
    """Make a one-layer image of `source` (a directory, or a root-filesystem tar,
    compressed or not) and name it `name` in the store, as `ocibuild import`. Files of
    the caller become root's in the image (a user's subordinate ids map as in its user
    namespace). `compression`: `gzip`, `zstd` or `none`; `platform`: the image's
    (default this host's).

    Raises `UsageError` for a bad name, compression or platform, `OcibuildError` when
    `source` cannot be read."""
    from ocibuild import image_import
    from ocibuild.cache.names import normalize_name
    from ocibuild.failed_build import cleaned_up

    if compression not in ("gzip", "zstd", "none"):
        raise UsageError(f"compression {compression!r}: use gzip, zstd or none")
    full = normalize_name(name)
    wanted = _platform(platform)
    store = _open(root)
    with cleaned_up(store):
        result = image_import.import_rootfs(Path(source), store.layout, tag=None,
                                            compression=compression, platform=wanted)
        store.tag(full, result.manifest)
    return _summary(store, full, result.manifest)


def tag(image: str, *names: str, root: str | os.PathLike[str] | None = None) -> list[str]:
    """Give the store's `image` (a name, digest or image ID) each of `names` as well;
    returns their full forms (`docker.io/library/app:1`). A name another image had
    moves to this one.

    Raises `ImageNotFoundError` when the store has no such image, `UsageError` for a
    bad name."""
    from ocibuild.local_images import tag_image

    return tag_image(_open(root), image, names)


def images(*, filters: Sequence[str] = (),
           root: str | os.PathLike[str] | None = None) -> list[ImageSummary]:
    """The store's images, one entry per name, sorted by name; `filters` as
    `ocibuild images --filter`: `reference=PATTERN` (shell wildcards, matched against
    the short and the full name) and `dangling=true|false`. Names whose image cannot be
    read are left out.

    Raises `UsageError` for an unknown filter."""
    if isinstance(filters, str):
        filters = (filters,)
    from ocibuild.local_images import list_images, parse_filters

    return list_images(_open(root), parse_filters(filters))


def _open(root: str | os.PathLike[str] | None) -> Store:
    from ocibuild.cache.store import Store

    return Store.open(root)


def _platform(text: str | None) -> Platform | None:
    from ocibuild.oci.platform import Platform

    if text is None:
        return None
    try:
        return Platform.parse(text)
    except ValueError as exc:
        raise UsageError(f"platform: {exc}") from None


def _summary(store: Store, full: str, desc: Descriptor) -> ImageSummary:
    """The listing entry of the name `full` for the image `desc`."""
    from ocibuild.cache.names import split_repository_tag
    from ocibuild.local_images import ImageSummary
    from ocibuild.oci.image import load_image

    image = load_image(store.layout, desc.digest)
    repository, tag_ = split_repository_tag(full)
    size = image.manifest.config.size + sum(layer.size for layer in image.manifest.layers)
    return ImageSummary(full, repository, tag_, desc.digest, image.manifest.config.digest,
                        image.config.created, size)


@contextlib.contextmanager
def _step(progress: ProgressCallback | None, name: str) -> Iterator[StepProgress | None]:
    """One progress step around a transfer: started, then done or failed."""
    if progress is None:
        yield None
        return
    from ocibuild.progress.transfer import StepProgress

    step = StepProgress(progress, 0, name)
    step.start()
    try:
        yield step
    except OcibuildError as exc:
        step.failed(exc.message)
        raise
    step.done()
