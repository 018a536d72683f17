"""Push an image (manifest or index) from an image layout to one or more references.

Per destination repository, the first name is asked for first (one HEAD of the
manifest by tag): when it already names this very digest, the registry holds the image
and everything it names (a registry accepts a manifest only once the blobs and child
manifests it names are in that repository), so nothing more is checked or sent; a push
of an unchanged image, the common CI case, is then a single request after the ping.
Otherwise every blob is checked with HEAD and skipped when present; a blob known to
live in another repository of the same registry is mounted from there; the rest are
uploaded in parallel, streamed from disk (monolithic PUT up to `chunk_size`, PATCH
chunks above it, resuming at the offset the registry confirms). Failed uploads are
retried with backoff on 5xx and connection errors. Manifests go last: child manifests
by digest, then the root once per tag, unless the tag already names it (the other
tags are checked with HEAD alongside the blobs).

`push_blobs` is the blob half on its own, for callers that write their own manifest
(the --cache-to exporter).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlencode

from ocibuild.errors import OcibuildError
from ocibuild.oci import limits, mediatypes
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.manifest import Index, Manifest, parse_manifest_or_index
from ocibuild.reference import Reference
from ocibuild.registry.blob_sources import BlobSources
from ocibuild.registry.client import (
    RETRY_STATUSES,
    ClientPool,
    RegistryClient,
    _drain,
    pull_scope,
    push_scope,
    wait_all,
)
from ocibuild.registry.errors import RegistryError, UnreachableError
from ocibuild.threads import Threads

if TYPE_CHECKING:
    from ocibuild.progress.transfer import StepProgress, Transfer

@dataclass
class BlobPushReport:
    """What pushing blobs did: each blob was uploaded, mounted or skipped (present)."""

    uploaded: int = 0
    mounted: int = 0
    skipped: int = 0
    bytes_uploaded: int = 0
    retries: int = 0


@dataclass
class PushReport(BlobPushReport):
    """What a push did: its blobs, the root manifest's digest and the names it now holds."""
    digest: str = ""  # of the root manifest or index
    references: list[str] = field(default_factory=list)
    manifests_present: int = 0  # names that already held this image: no manifest PUT


FetchBlob = Callable[[Descriptor], bool]
"""Puts a blob into the layout being pushed from; False when it has no source for it."""


@dataclass(frozen=True)
class _Tree:
    """Everything a push sends: blobs, then child manifests, then the root."""

    root: Descriptor
    root_bytes: bytes
    children: tuple[tuple[Descriptor, bytes], ...]
    blobs: tuple[Descriptor, ...]


def _collect(layout: ImageLayout, desc: Descriptor) -> _Tree:
    where = f"{layout.path}"
    root_bytes = limits.read_blob(layout, desc.digest, limits.MANIFEST, where, desc.size)
    doc = parse_manifest_or_index(root_bytes, desc.media_type)
    manifests: list[tuple[Descriptor, Manifest]] = []
    children: list[tuple[Descriptor, bytes]] = []
    if isinstance(doc, Index):
        for child in doc.manifests:
            if child.media_type not in mediatypes.MANIFEST_TYPES:
                raise OcibuildError(f"{layout.path}: index {desc.digest} lists "
                                    f"{child.media_type or 'an untyped entry'}; "
                                    "only image manifests can be pushed")
            data = limits.read_blob(layout, child.digest, limits.MANIFEST, where, child.size)
            manifests.append((child, Manifest.from_bytes(data, child.media_type)))
            children.append((child, data))
    else:
        manifests.append((desc, doc))
    blobs: dict[str, Descriptor] = {}
    for _, manifest in manifests:
        for blob in (manifest.config, *manifest.layers):
            if not layout.has_blob(blob.digest):
                if blob.urls:
                    continue  # a foreign layer: registries fetch it from its URLs
                raise OcibuildError(f"{layout.path}: blob {blob.digest} of image "
                                    f"{desc.digest} is missing")
            blobs.setdefault(blob.digest, blob)
    media_type = doc.media_type
    return _Tree(Descriptor(media_type, desc.digest, desc.size), root_bytes, tuple(children),
                 tuple(blobs.values()))


# what one read of an upload body returns at most: how far an upload goes on after
# the command is interrupted (the socket's send of a read cannot be cut short)
UPLOAD_READ = 256 << 10


class _Slice:
    """A read-only window [start, start+length) of a file, for one request body; it
    stops the upload (TransferCancelled) once the client is cancelled."""

    def __init__(self, f: BinaryIO, start: int, length: int, client: RegistryClient,
                 what: str, shown: Transfer | None = None) -> None:
        self._f = f
        self._left = length
        self._client = client
        self._what = what
        self._shown = shown
        f.seek(start)
        if shown is not None:
            shown.restart(start)

    def read(self, n: int = -1) -> bytes:
        self._client.check_cancelled(self._what)
        if self._left <= 0:
            return b""
        n = min(self._left if n is None or n < 0 else n, self._left, UPLOAD_READ)
        data = self._f.read(n)
        self._left -= len(data)
        if self._shown is not None:
            self._shown.advance(len(data))
        return data


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def push_blobs(client: RegistryClient, repository: str, layout: ImageLayout,
               blobs: Iterable[Descriptor], *, what: str,
               sources: BlobSources | None = None, fetch: FetchBlob | None = None,
               report: BlobPushReport | None = None, pool: Threads | None = None,
               progress: StepProgress | None = None) -> BlobPushReport:
    """Push `blobs` from `layout` to `repository` of the client's registry, in parallel
    (largest first, `client.options.jobs` at once, or on the caller's `pool`).

    Each blob is checked with HEAD and skipped when the repository has it; else mounted
    from another repository of the registry that `sources` knows holds it; else uploaded,
    streamed from `layout`. A blob that must be uploaded but is not in `layout` is
    brought there by `fetch` first (an error when there is no `fetch`, or it returns
    False). Afterwards `sources` records that the repository holds every blob. The
    counts go to `report` when given (to sum several pushes), which is returned.
    `what` starts every error message ("push REF"). An upload's bytes are shown under
    `progress`, as a status named by the blob's digest."""
    report = report if report is not None else BlobPushReport()
    pusher = _BlobPusher(client, repository, layout, sources, fetch, report, what, progress)
    # largest first: the long uploads start at once, small ones fill the gaps
    todo = sorted({b.digest: b for b in blobs}.values(), key=lambda b: -b.size)
    if pool is None:
        with Threads(min(client.options.jobs, len(todo)), "push") as own:
            wait_all([own.submit(pusher.push, b) for b in todo], [client])
    else:
        wait_all([pool.submit(pusher.push, b) for b in todo], [client])
    if sources is not None:
        sources.add(client.registry, repository, [b.digest for b in todo])
    return report


class _BlobPusher:
    def __init__(self, client: RegistryClient, repository: str, layout: ImageLayout,
                 sources: BlobSources | None, fetch: FetchBlob | None,
                 report: BlobPushReport, what: str,
                 progress: StepProgress | None = None) -> None:
        self.client = client
        self.progress = progress
        self.repository = repository
        self.layout = layout
        self.sources = sources
        self.fetch = fetch
        self.report = report
        self.what = what
        self.scopes = [push_scope(repository)]
        self._count_lock = threading.Lock()

    def _count(self, name: str, n: int = 1) -> None:
        with self._count_lock:
            setattr(self.report, name, getattr(self.report, name) + n)

    def push(self, blob: Descriptor) -> None:
        what = f"{self.what}: blob {blob.digest[:19]}"
        if self.client.blob_exists(self.repository, blob.digest, what, self.scopes):
            self._count("skipped")
            return
        opts = self.client.options
        delay = opts.backoff
        for attempt in range(1, opts.attempts + 1):
            try:
                location = self._start(blob, what)
                if location is None:
                    self._count("mounted")
                    return
                if not self.layout.has_blob(blob.digest):
                    self._bring(blob, what)
                self._upload(location, blob, what)
                self._count("uploaded")
                self._count("bytes_uploaded", blob.size)
                return
            except (RegistryError, OSError) as exc:
                retryable = isinstance(exc, UnreachableError | OSError) or (
                    isinstance(exc, RegistryError) and exc.status in RETRY_STATUSES)
                if not retryable or attempt == opts.attempts:
                    raise
                self._count("retries")
                time.sleep(delay)
                delay *= 2

    def _bring(self, blob: Descriptor, what: str) -> None:
        """Fetch a blob the registry could not mount and `layout` lacks."""
        if self.fetch is None or not self.fetch(blob):
            raise OcibuildError(f"{what}: not in {self.layout.path}, and the registry "
                                "could not mount it from another repository")

    def _start(self, blob: Descriptor, what: str) -> str | None:
        """Mount the blob (None) or open an upload session (its URL)."""
        base = f"/v2/{self.repository}/blobs/uploads/"
        candidates = []
        if self.sources is not None:
            candidates = [r for r in self.sources.repositories(self.client.registry, blob.digest)
                          if r != self.repository][:3]
        for source in candidates:
            resp = self.client.request(
                "POST", _with_query(base, mount=blob.digest, **{"from": source}),
                scopes=[*self.scopes, pull_scope(source)], what=f"{what}: mount from {source}",
                ok=(201, 202))
            _drain(resp)
            if resp.status == 201:
                return None
            location = resp.headers.get("Location")
            if location:
                return self.client.absolute(location)
        resp = self.client.request("POST", base, scopes=self.scopes, what=what, ok=(202,))
        _drain(resp)
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"{what}: the registry started an upload without a Location")
        return self.client.absolute(location)

    def _upload(self, location: str, blob: Descriptor, what: str) -> None:
        shown = None
        if self.progress is not None:
            shown = self.progress.transfer(blob.digest, blob.size)
        self._send(location, blob, what, shown)
        if shown is not None:
            shown.finish()

    def _send(self, location: str, blob: Descriptor, what: str, shown: Transfer | None
              ) -> None:
        self.layout.ensure_blob(blob.digest)
        path = self.layout.blob_path(blob.digest)
        chunk = self.client.options.chunk_size
        with open(path, "rb") as f:
            if blob.size <= chunk:
                resp = self.client.request(
                    "PUT", _with_query(location, digest=blob.digest), scopes=self.scopes,
                    what=what, body=_Slice(f, 0, blob.size, self.client, what, shown),
                    replayable=False, ok=(201,),
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Length": str(blob.size)})
                _drain(resp)
                return
            offset = 0
            failures = 0
            while offset < blob.size:
                length = min(chunk, blob.size - offset)
                try:
                    resp = self.client.request(
                        "PATCH", location, scopes=self.scopes, what=what,
                        body=_Slice(f, offset, length, self.client, what, shown),
                        replayable=False,
                        ok=(202,),
                        headers={"Content-Type": "application/octet-stream",
                                 "Content-Length": str(length),
                                 "Content-Range": f"{offset}-{offset + length - 1}"})
                except (RegistryError, OSError):
                    failures += 1
                    if failures >= self.client.options.attempts:
                        raise
                    time.sleep(self.client.options.backoff * failures)
                    offset, location = self._resume_point(location, what)
                    continue
                _drain(resp)
                location = self.client.absolute(resp.headers.get("Location") or location)
                offset += length
            resp = self.client.request(
                "PUT", _with_query(location, digest=blob.digest), scopes=self.scopes,
                what=what, ok=(201,), body=b"",
                headers={"Content-Type": "application/octet-stream", "Content-Length": "0"})
            _drain(resp)

    def _resume_point(self, location: str, what: str) -> tuple[int, str]:
        """Ask the registry how much of an interrupted chunked upload it holds."""
        try:
            resp = self.client.request("GET", location, scopes=self.scopes, what=what,
                                       ok=(204,))
        except RegistryError:
            raise RegistryError(f"{what}: upload interrupted and cannot be resumed",
                                status=503) from None
        _drain(resp)
        got = resp.headers.get("Range", "")  # "0-N": bytes 0..N are stored
        end = int(got.rsplit("-", 1)[1]) + 1 if "-" in got else 0
        self.report.retries += 1
        return end, self.client.absolute(resp.headers.get("Location") or location)


def root_descriptor(layout: ImageLayout, ref: str | None) -> Descriptor:
    """What a push sends from a layout: the tagged manifest or index itself, typed."""
    desc = layout.resolve(ref)
    if desc.media_type in mediatypes.MANIFEST_TYPES | mediatypes.INDEX_TYPES:
        return desc
    data = limits.read_blob(layout, desc.digest, limits.MANIFEST, str(layout.path), desc.size)
    doc = parse_manifest_or_index(data, desc.media_type)
    if doc.media_type not in mediatypes.MANIFEST_TYPES | mediatypes.INDEX_TYPES:
        raise OcibuildError(f"{layout.path}: {ref or 'its image'} is not a manifest or index")
    return Descriptor(doc.media_type, desc.digest, desc.size, platform=desc.platform)


def push_image(layout: ImageLayout, desc: Descriptor, destinations: Sequence[Reference], *,
               clients: ClientPool | None = None, sources: BlobSources | None = None,
               progress: StepProgress | None = None) -> PushReport:
    """Push the manifest or index `desc` (and all it names) from `layout` to every
    destination. Destinations in one repository share the blob uploads. Uploads and
    manifests are shown under `progress`, as BuildKit shows a push."""
    if not destinations:
        raise OcibuildError("push: no destination reference")
    own = clients is None
    clients = clients or ClientPool()
    tree = _collect(layout, desc)
    report = PushReport(digest=tree.root.digest)
    groups: dict[tuple[str, str], list[Reference]] = {}
    for ref in destinations:
        groups.setdefault((ref.registry, ref.repository), []).append(ref)
    try:
        for (registry, repository), refs in groups.items():
            for ref in refs:
                if ref.digest and ref.digest != tree.root.digest:
                    raise OcibuildError(f"push {ref}: the image's digest is "
                                        f"{tree.root.digest}, not {ref.digest}")
            _Repository(clients.get(registry), repository, refs, tree).push(
                layout, sources, report, progress)
    finally:
        if own:
            clients.close()
    return report


class _Repository:
    """The push of one tree to one repository, under one or more of its names."""

    def __init__(self, client: RegistryClient, repository: str, refs: Sequence[Reference],
                 tree: _Tree) -> None:
        self.client = client
        self.repository = repository
        self.refs = refs
        self.tree = tree
        self.scopes = [push_scope(repository)]
        self.identifiers = [ref.tag or ref.digest or tree.root.digest for ref in refs]

    def _named(self, i: int) -> str | None:
        """What the i-th name holds in the registry now (a digest), or None."""
        return self.client.manifest_exists(self.repository, self.identifiers[i],
                                           f"push {self.refs[i]}", self.scopes)

    def push(self, layout: ImageLayout, sources: BlobSources | None, report: PushReport,
             progress: StepProgress | None) -> None:
        tree, client = self.tree, self.client
        # The first name is asked alone: when it already names this very image, the
        # registry took this manifest into this repository, which it does only once
        # every blob and child manifest it names is there, so nothing else is asked.
        first = self._named(0)
        if first == tree.root.digest:
            named = [first, *(self._named(i) for i in range(1, len(self.refs)))]
            report.skipped += len(tree.blobs)
            if sources is not None:
                sources.add(client.registry, self.repository, [b.digest for b in tree.blobs])
        else:
            named = [first, *self._push_blobs(layout, sources, report, progress)]
            for child, data in tree.children:
                if client.manifest_exists(self.repository, child.digest, f"push {self.refs[0]}",
                                          self.scopes) is None:
                    client.put_manifest(self.repository, child.digest, data, child.media_type,
                                        f"push {self.refs[0]}")
        for ref, identifier, current in zip(self.refs, self.identifiers, named, strict=True):
            if current == tree.root.digest:
                report.manifests_present += 1
            else:
                client.put_manifest(self.repository, identifier, tree.root_bytes,
                                    tree.root.media_type, f"push {ref}")
            named_ref = str(ref.with_digest(tree.root.digest))
            if progress is not None:
                progress.status(f"pushing manifest for {named_ref}")
            report.references.append(named_ref)

    def _push_blobs(self, layout: ImageLayout, sources: BlobSources | None,
                    report: PushReport, progress: StepProgress | None) -> list[str | None]:
        """Push every blob; return what the names after the first hold now, asked
        alongside the blob checks."""
        jobs = max(1, min(self.client.options.jobs, len(self.tree.blobs) + len(self.refs)))
        with Threads(jobs, "push") as pool:
            present = [pool.submit(self._named, i) for i in range(1, len(self.refs))]
            push_blobs(self.client, self.repository, layout, self.tree.blobs,
                       what=f"push {self.refs[0]}", sources=sources, report=report, pool=pool,
                       progress=progress)
            return [future.result() for future in present]
