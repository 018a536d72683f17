"""Pull an image from a registry into an image layout (the store, or any layout).

The manifest (or index, then the manifest for the wanted platform) is checked
against the digest that names it; blobs are streamed to the layout in parallel,
each verified against its digest before it becomes visible; a blob already in
the layout is not fetched; a dropped connection resumes with a Range request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocibuild.errors import OcibuildError, printable
from ocibuild.oci import digest as _digest
from ocibuild.oci import limits, mediatypes
from ocibuild.oci.config import ImageConfig
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.image import Image, select_platform
from ocibuild.oci.layout import BlobWriter, ImageLayout
from ocibuild.oci.manifest import Index, Manifest, parse_manifest_or_index
from ocibuild.oci.platform import Platform
from ocibuild.oci.platform import host as host_platform
from ocibuild.reference import Reference
from ocibuild.registry.blob_sources import BlobSources
from ocibuild.registry.client import ClientPool, RegistryClient, wait_all
from ocibuild.registry.errors import RegistryError, UnreachableError
from ocibuild.registry.http import BrokenConnection, ReadTimeout
from ocibuild.threads import Threads

if TYPE_CHECKING:
    from ocibuild.progress.transfer import StepProgress, Transfer

STREAM_CHUNK = 1 << 20


@dataclass
class PullStats:
    """What a pull transferred: blobs fetched, already present, resumed, and bytes."""
    fetched: int = 0  # blobs downloaded
    present: int = 0  # blobs already in the layout
    resumed: int = 0  # Range requests after a dropped connection
    bytes: int = 0


def _fetch_manifest(client: RegistryClient, ref: Reference, identifier: str,
                    expected: Descriptor | None, what: str) -> tuple[bytes, str, str]:
    data, media_type, header_digest = client.get_manifest(ref.repository, identifier, what)
    digest = _digest.of_bytes(data)
    want = expected.digest if expected is not None else (
        identifier if _digest.is_digest(identifier) else "")
    if want and digest != want:
        raise RegistryError(f"{what}: the registry sent a manifest with digest {digest}, "
                            f"not the requested {want}")
    if not want and header_digest.startswith("sha256:") and header_digest != digest:
        raise RegistryError(f"{what}: manifest digest {digest} differs from the registry's "
                            f"Docker-Content-Digest {header_digest}")
    if expected is not None and expected.size != len(data):
        raise RegistryError(f"{what}: manifest {digest} has {len(data)} bytes, "
                            f"the index says {expected.size}")
    return data, media_type, digest


def resolve_manifest(client: RegistryClient, ref: Reference, platform: Platform | None,
                     what: str) -> tuple[Descriptor, Manifest, bytes]:
    """The manifest `ref` names for `platform` (through an index if there is one)."""
    data, media_type, digest = _fetch_manifest(client, ref, ref.identifier, None, what)
    expected: Descriptor | None = None
    for _ in range(4):
        if _is_schema1(data, media_type):
            raise RegistryError(f"{what}: Docker schema 1 manifests are not supported; "
                                "re-push the image with a current client")
        doc = parse_manifest_or_index(data, media_type)
        if isinstance(doc, Manifest):
            desc = Descriptor(doc.media_type, digest, len(data),
                              platform=expected.platform if expected else None)
            return desc, doc, data
        assert isinstance(doc, Index)
        try:
            expected = select_platform(doc, platform or host_platform(), str(ref))
        except OcibuildError as exc:  # it lists the index's platforms: registry text
            raise OcibuildError(printable(exc.message)) from None
        data, media_type, digest = _fetch_manifest(client, ref, expected.digest, expected, what)
        media_type = media_type or expected.media_type
    raise RegistryError(f"{what}: image indexes nested too deeply")


def _is_schema1(data: bytes, media_type: str) -> bool:
    if media_type.startswith("application/vnd.docker.distribution.manifest.v1"):
        return True
    head = data[:200].replace(b" ", b"")
    return b'"schemaVersion":1,' in head or b'"schemaVersion":1}' in head


def _stream_into(writer: BlobWriter, client: RegistryClient, repository: str,
                 desc: Descriptor, what: str, attempts: int, backoff: float,
                 stats: PullStats, shown: Transfer | None = None) -> bool:
    """Download into `writer`, resuming after drops; False if the server forced a restart."""
    offset = 0
    if shown is not None:
        shown.restart()
    drops = 0
    while True:
        resp = client.open_blob(repository, desc.digest, what, offset)
        try:
            if offset and resp.status != 206:
                return False  # the server ignored Range: start again from byte 0
            try:
                for chunk in resp.stream(STREAM_CHUNK):
                    client.check_cancelled(what)
                    writer.write(chunk)
                    offset += len(chunk)
                    if shown is not None:
                        shown.advance(len(chunk))
                    if offset > desc.size:
                        raise _digest.DigestMismatchError(
                            f"{what}: blob {desc.digest} is longer than its {desc.size} bytes")
            except (BrokenConnection, ReadTimeout) as exc:
                client.check_cancelled(what)  # cut short by cancel(), not by the network
                if isinstance(exc, ReadTimeout):
                    # a registry that stalls is not asked again: that would multiply
                    # the time to fail by the attempts
                    raise client.timeout_error(
                        what, "GET", f"{client.base_url}/v2/{repository}/blobs/{desc.digest}",
                        exc) from None
                drops += 1
                if drops >= attempts:
                    raise UnreachableError(
                        f"{what}: blob {desc.digest}: connection lost at byte {offset} "
                        f"of {desc.size} ({exc.reason}), {drops} times") from None
                stats.resumed += 1
                time.sleep(backoff * drops)
                continue
        finally:
            resp.release()
        if offset >= desc.size:
            return True
        drops += 1  # a clean end before the full size: ask for the rest
        if drops >= attempts:
            raise RegistryError(f"{what}: blob {desc.digest}: the registry sent {offset} of "
                                f"{desc.size} bytes")
        stats.resumed += 1


def fetch_blob(client: RegistryClient, repository: str, desc: Descriptor, layout: ImageLayout,
               what: str, stats: PullStats | None = None,
               progress: StepProgress | None = None) -> None:
    """Stream one blob into `layout`, verified; nothing is stored if it does not match.
    Its bytes are shown under `progress` (as a status named by its digest)."""
    stats = stats if stats is not None else PullStats()
    if layout.has_blob(desc.digest):
        stats.present += 1
        return
    opts = client.options
    shown = progress.transfer(desc.digest, desc.size) if progress is not None else None
    for _ in range(opts.attempts):
        with layout.blob_writer(desc.digest, desc.size) as writer:
            if _stream_into(writer, client, repository, desc, what, opts.attempts,
                            opts.backoff, stats, shown):
                try:
                    writer.commit()
                except _digest.DigestMismatchError as exc:
                    raise _digest.DigestMismatchError(
                        f"{what}: downloaded blob rejected: {exc.message}") from None
                stats.fetched += 1
                stats.bytes += desc.size
                if shown is not None:
                    shown.finish()
                return
    raise RegistryError(f"{what}: blob {desc.digest}: download kept restarting")


@dataclass
class PendingPull:
    """An image whose manifest and config are resolved (the config is in the layout):
    `finish()` brings its layers. A build resolves every base first (their configs shape
    the build) and fetches the layers when their FROM step runs, as BuildKit does."""

    ref: Reference
    client: RegistryClient
    image: Image
    manifest_bytes: bytes
    sources: BlobSources | None = None

    def missing(self, layout: ImageLayout) -> list[Descriptor]:
        return [layer for layer in self.image.manifest.layers
                if not layout.has_blob(layer.digest)]

    def finish(self, layout: ImageLayout, stats: PullStats | None = None,
               progress: StepProgress | None = None) -> Image:
        """Fetch the layers `layout` lacks (in parallel, shown under `progress`), then
        store the manifest: the image is whole in the layout."""
        stats = stats if stats is not None else PullStats()
        what = f"pull {self.ref}"
        wanted = self.missing(layout)
        stats.present += len(self.image.manifest.layers) - len(wanted)
        if wanted:
            jobs = max(1, min(self.client.options.jobs, len(wanted)))
            with Threads(jobs, "pull") as pool:
                wait_all([pool.submit(fetch_blob, self.client, self.ref.repository, layer,
                                      layout, what, stats, progress)
                          for layer in wanted], [self.client])
        layout.put_bytes(self.manifest_bytes)
        manifest = self.image.manifest
        if self.sources is not None:
            self.sources.add(self.ref.registry, self.ref.repository,
                             [manifest.config.digest, *(x.digest for x in manifest.layers)])
        return self.image


def start_pull(ref: Reference, layout: ImageLayout, clients: ClientPool, *,
               platform: Platform | None = None, sources: BlobSources | None = None,
               stats: PullStats | None = None) -> PendingPull:
    """Resolve `ref` for `platform` (default: the host's) and fetch its config into
    `layout`: the first half of a pull."""
    what = f"pull {ref}"
    client = clients.get(ref.registry)
    desc, manifest, manifest_bytes = resolve_manifest(client, ref, platform, what)
    if manifest.config.media_type not in mediatypes.CONFIG_TYPES and \
            manifest.config.media_type:
        raise OcibuildError(f"{what}: not a container image (config media type "
                            f"{printable(manifest.config.media_type)}); "
                            "use an artifact client")
    config_desc = manifest.config
    limits.refuse_oversized(limits.IMAGE_CONFIG, config_desc.size, what, config_desc.digest)
    fetch_blob(client, ref.repository, config_desc, layout, what, stats)
    config = ImageConfig.from_bytes(limits.read_blob(
        layout, config_desc.digest, limits.IMAGE_CONFIG, what, config_desc.size))
    if len(config.diff_ids) != len(manifest.layers):
        raise OcibuildError(f"{what}: the manifest has {len(manifest.layers)} layers but "
                            f"the config lists {len(config.diff_ids)} diff_ids")
    if desc.platform is None:
        desc = Descriptor(desc.media_type, desc.digest, desc.size, platform=config.platform)
    return PendingPull(ref, client, Image(desc, manifest, config), manifest_bytes, sources)


def pull(ref: Reference, layout: ImageLayout, *, platform: Platform | None = None,
         clients: ClientPool | None = None, sources: BlobSources | None = None,
         stats: PullStats | None = None, progress: StepProgress | None = None) -> Image:
    """Pull `ref` for `platform` (default: the host's) into `layout`; returns the image.
    Each blob's bytes are shown under `progress`, after a "resolve" status.

    The caller tags it (layout.tag / store.tag): a pull only adds verified blobs.
    """
    own = clients is None
    clients = clients or ClientPool()
    stats = stats if stats is not None else PullStats()
    try:
        pending = start_pull(ref, layout, clients, platform=platform, sources=sources,
                             stats=stats)
        if progress is not None:
            progress.status(f"resolve {ref.with_digest(pending.image.digest)}")
        return pending.finish(layout, stats, progress)
    finally:
        if own:
            clients.close()
