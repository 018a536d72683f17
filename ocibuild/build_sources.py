"""Where a build's images come from: the local store, a registry, an OCI layout, a
docker archive, or a `--build-context`.

`ImageSources` is the resolver the Dockerfile converter calls for every `FROM` and
`COPY --from` / `RUN --mount=from=` that is not a stage. A plain name is looked up in
the local store first (as `docker build` does) and pulled when it is missing, or
always with `pull=True` (`--pull`); what is pulled is named in the store by its full
reference, so the next build finds it without the network. Every answer is a manifest
digest, which is the image's part of every cache key.

Progress is shown as BuildKit shows it: resolving a reference at a registry is a step
of its own, `[internal] load metadata for docker.io/library/busybox:latest` (numbered
before the build's steps: `vertices` counts them), and the layers of a pulled image are
fetched when its FROM step runs (`fetch_layers`, the solver's hook), their bytes shown
under that step, which is then done, not CACHED. The store names the image once its
layers are all there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.errors import OcibuildError, UsageError
from ocibuild.oci.config import ImageConfig
from ocibuild.oci.image import Image
from ocibuild.oci.platform import Platform

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.progress.events import Sink
    from ocibuild.progress.transfer import StepProgress
    from ocibuild.registry import BlobSources, BuildContext, ClientPool, RegistryOptions
    from ocibuild.registry.pull import PendingPull

SCHEMES = ("docker-image://", "oci-layout://", "docker-archive://")


def parse_build_contexts(values: Iterable[str],
                         git: Callable[[str], Path | None] | None = None
                         ) -> dict[str, BuildContext]:
    """`--build-context NAME=VALUE` values by name, normalized as buildx does (lower case,
    an image name in its familiar form without ":latest"; a name given twice is an
    error). `git` checks a git URL value out (ocibuild.sources.git_context)
    into the directory the context then is."""
    found: dict[str, BuildContext] = {}
    if not values:
        return found  # the registry package is not needed then
    from ocibuild.registry import BuildContext, parse_build_context

    for text in values:
        name, _, value = text.partition("=")
        checkout = git(value) if git is not None and name.strip() and value else None
        ctx = (BuildContext(name.strip().lower(), "", checkout) if checkout is not None
               else parse_build_context(text))
        key = context_key(ctx.name)  # as buildx: `busybox:latest=...` names `busybox`
        if key in found:
            raise UsageError(f"--build-context {key!r} given more than once")
        directory = ctx.directory.resolve() if ctx.directory is not None else None
        found[key] = type(ctx)(key, ctx.source, directory)
    return found


def context_key(ref: str) -> str:
    """The `--build-context` name a FROM / --from reference looks for: its familiar form
    without ":latest", as BuildKit's NamedContext normalizes it, so `busybox:latest` and
    `docker.io/library/busybox` both find a context named `busybox`."""
    from ocibuild.reference import InvalidReferenceError, parse_reference

    try:
        named = parse_reference(ref, default_tag="")
    except InvalidReferenceError:
        return ref.lower()  # a stage name or number, or no image name at all
    return named.familiar().removesuffix(":latest")


def _platform_fits(image: Image, wanted: Platform) -> bool:
    """A local image serves `wanted` unless its config names another os/architecture."""
    config = image.config
    if not config.architecture or not config.os:
        return True
    return wanted.matches(Platform(config.os, config.architecture, config.variant))


class ImageSources:
    """Resolves image references for one build; call `close()` when the build is done."""

    def __init__(self, store: Store, *, registry: RegistryOptions | None = None,
                 contexts: Mapping[str, BuildContext] | None = None,
                 pull: bool = False, progress: Sink | None = None) -> None:
        self.store = store
        self.registry = registry
        self.contexts = {k: v for k, v in (contexts or {}).items() if v.is_image}
        self.pull = pull
        self.progress = progress
        self.vertices = 0  # the steps shown so far ("load metadata for ...")
        self._clients: ClientPool | None = None
        self._seen: dict[tuple[str, str], tuple[str, ImageConfig]] = {}
        self._pending: dict[str, list[PendingPull]] = {}  # manifest digest -> its pulls
        self._fetching: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def clients(self) -> ClientPool:
        if self._clients is None:
            from ocibuild.registry import ClientPool

            self._clients = ClientPool(self.registry)
        return self._clients

    def close(self) -> None:
        if self._clients is not None:
            self._clients.close()
            self._clients = None

    def __call__(self, ref: str, platform: Platform) -> tuple[str, ImageConfig]:
        """(manifest digest, config) of the image `ref` names for `platform`."""
        key = (ref, str(platform))
        if key not in self._seen:
            image = self.image(ref, platform)
            self._seen[key] = (image.digest, image.config)
        return self._seen[key]

    def image(self, ref: str, platform: Platform) -> Image:
        ctx = self.contexts.get(context_key(ref))
        text = ctx.source if ctx is not None else ref
        if text.startswith(SCHEMES[1:]):
            from ocibuild.registry import resolve_source

            return resolve_source(text, self.store, platform)
        name = text.removeprefix(SCHEMES[0])
        if not self.pull:
            local = self.store.resolve_image(name, platform)
            if local is not None and _platform_fits(local, platform):
                return local
        if "://" in name:
            raise UsageError(f"{ref}: unsupported image source (use {', '.join(SCHEMES)})")
        if name.startswith("sha256:") or _is_image_id(name):
            raise OcibuildError(f"image {name!r} is not in the local store "
                                f"({self.store.root})")
        return self._from_registry(name, platform)

    def _from_registry(self, name: str, platform: Platform) -> Image:
        """The image `name` (a registry reference) is for `platform`: its manifest and
        config resolved now, shown as a step; its layers, when some are missing, left for
        fetch_layers."""
        from ocibuild.progress.transfer import StepProgress
        from ocibuild.reference import parse_reference
        from ocibuild.registry.pull import start_pull
        from ocibuild.registry.resolve import local_image

        ref = parse_reference(name)
        image = local_image(ref, self.store, platform)
        if image is not None:
            return image
        self.vertices += 1
        step = StepProgress(self.progress, self.vertices,
                            f"[internal] load metadata for {ref}")
        step.start()
        try:
            pending = start_pull(ref, self.store.layout, self.clients(), platform=platform,
                                 sources=self._sources())
        except OcibuildError as exc:
            step.failed(exc.message)
            raise
        step.done()
        if pending.missing(self.store.layout):
            self._pending.setdefault(pending.image.digest, []).append(pending)
        else:  # every layer is here already: nothing to pull
            self.store.tag(str(ref), pending.finish(self.store.layout).descriptor)
        return pending.image

    @property
    def pulling(self) -> bool:
        """Whether some image's layers are still to be fetched (by fetch_layers)."""
        return bool(self._pending)

    def fetch_layers(self, manifest_digest: str, step: StepProgress) -> bool:
        """Fetch the missing layers of the image `manifest_digest` if this build pulls
        it, shown under its FROM `step` (started, a "resolve" status, each blob, done),
        then name it in the store. False (nothing done) for an image the store had."""
        with self._lock:
            if manifest_digest not in self._pending:
                return False
            lock = self._fetching.setdefault(manifest_digest, threading.Lock())
        with lock:  # a second user of the image waits for the first's fetch
            with self._lock:
                pulls = self._pending.pop(manifest_digest, None)
            if pulls is None:
                return False
            step.start()
            step.status(f"resolve {pulls[0].ref.with_digest(manifest_digest)}")
            try:
                image = pulls[0].finish(self.store.layout, progress=step)
            except OcibuildError as exc:
                step.failed(exc.message)
                raise
            for pending in pulls:
                self.store.tag(str(pending.ref), image.descriptor)
            step.done()
            return True

    def _sources(self) -> BlobSources | None:
        from ocibuild.registry import store_sources

        return store_sources(self.store)


def _is_image_id(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def context_directories(contexts: Mapping[str, BuildContext]) -> dict[str, Path]:
    """Name -> directory of the `--build-context` values that are local directories."""
    return {name: ctx.directory for name, ctx in contexts.items() if ctx.directory is not None}
