"""Where an image can be read from and written to, named as skopeo names them.

    oci:PATH[:TAG|@DIGEST]            an OCI image layout directory
    oci-archive:FILE[:TAG]            the same packed in a tar file
    docker-archive:FILE[:NAME[:TAG]]  a `docker save` tarball
    docker://REF                      a registry
    store:NAME, or a bare NAME        the local store (ocibuild's `containers-storage:`)

`copy_image` reads one image (the host's platform, or `platform`, from an index) from
one and writes it to another; every blob is checked against its digest on the way.
Between two repositories of one registry, layers are mounted, not downloaded and sent
again; `compression` converts layers to gzip or zstd (streaming, the diffIDs checked).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.errors import OcibuildError, UsageError
from ocibuild.oci import digest as _digest
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.image import Image, load_image
from ocibuild.oci.layout import REF_NAME, ImageLayout, LayoutError
from ocibuild.oci.manifest import Index, Manifest
from ocibuild.oci.platform import Platform

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.progress.transfer import StepProgress
    from ocibuild.registry.blob_sources import BlobSources
    from ocibuild.registry.client import ClientPool

__all__ = ["OCI", "OCI_ARCHIVE", "DOCKER_ARCHIVE", "DOCKER", "STORE", "TRANSPORTS",
           "CopyResult", "ImageRef", "copy_blobs", "copy_image", "opened_image",
           "parse_image_ref", "scratch_dir", "write_image"]

OCI, OCI_ARCHIVE, DOCKER_ARCHIVE, DOCKER, STORE = (
    "oci", "oci-archive", "docker-archive", "docker", "store")
TRANSPORTS = (OCI, OCI_ARCHIVE, DOCKER_ARCHIVE, DOCKER, STORE)
_PREFIXES = (("oci-archive:", OCI_ARCHIVE), ("oci:", OCI), ("docker-archive:", DOCKER_ARCHIVE),
             ("docker://", DOCKER), ("store:", STORE))


@dataclass(frozen=True)
class ImageRef:
    """A parsed image location: `transport`, then a `path` (layouts and archives) and a
    `name` (a tag or digest in a layout, NAME:TAG in a docker archive, the reference of
    a registry or store image; None: the only image there)."""

    transport: str
    path: Path | None
    name: str | None
    text: str

    def __str__(self) -> str:
        return self.text


def _split_tag(body: str, text: str) -> tuple[Path, str | None]:
    """PATH[:TAG|@DIGEST] as in oci:; a ':' before the last '/' belongs to the path."""
    if not body:
        raise UsageError(f"{text!r}: missing the path")
    if "@" in body:
        path, _, dgst = body.rpartition("@")
        if not _digest.is_digest(dgst):
            raise UsageError(f"{text!r}: {dgst!r} is not a sha256 digest")
        return Path(path), dgst
    slash, colon = body.rfind("/"), body.rfind(":")
    if colon > slash:
        if not body[colon + 1:]:
            raise UsageError(f"{text!r}: empty tag")
        return Path(body[:colon]), body[colon + 1:]
    return Path(body), None


def parse_image_ref(text: str) -> ImageRef:
    """Parse TRANSPORT:DETAILS (see the module doc); a bare name is a store image."""
    for prefix, transport in _PREFIXES:
        if not text.startswith(prefix):
            continue
        body = text[len(prefix):]
        if transport in (OCI, OCI_ARCHIVE):
            path, name = _split_tag(body, text)
            return ImageRef(transport, path, name, text)
        if transport == DOCKER_ARCHIVE:
            # FILE[:NAME[:TAG]]: the file is the part before the first ':' unless the
            # whole text names an existing file
            if not body:
                raise UsageError(f"{text!r}: missing the archive's path")
            if ":" in body and not Path(body).exists():
                path_text, _, name = body.partition(":")
                return ImageRef(transport, Path(path_text), name or None, text)
            return ImageRef(transport, Path(body), None, text)
        if not body:
            raise UsageError(f"{text!r}: missing the image name")
        _check_reference(body, text)
        return ImageRef(transport, None, body, text)
    if "://" in text or text.split(":", 1)[0] in ("containers-storage", "dir", "docker-daemon"):
        scheme = text.split(":", 1)[0]
        raise UsageError(f"{text!r}: unsupported transport {scheme!r} (use "
                         + ", ".join(p for p, _ in _PREFIXES) + " or a store image name)")
    _check_reference(text, text)
    return ImageRef(STORE, None, text, text)


def _check_reference(name: str, text: str) -> None:
    from ocibuild.reference import parse_reference

    try:
        parse_reference(name)
    except OcibuildError as exc:
        raise UsageError(f"{text!r}: {exc.message}") from None


# -- reading ---------------------------------------------------------------------------
@dataclass
class _Opened:
    """An image opened for copying: its layout, its image, and where it came from."""
    layout: ImageLayout
    image: Image
    scratch: bool  # the layout is this operation's own: it may be written to
    registry: tuple[str, str] | None = None  # (registry, repository) of a docker:// source


@contextlib.contextmanager
def opened_image(ref: ImageRef, *, store: Store | None = None, platform: Platform | None = None,
                 clients: ClientPool | None = None, sources: BlobSources | None = None,
                 layers: bool = True, progress: StepProgress | None = None
                 ) -> Iterator[tuple[ImageLayout, Image]]:
    """The image `ref` names, with (when `layers`) every blob in the layout yielded
    (downloads shown under `progress`); temporary files are removed afterwards."""
    with _opened(ref, store, platform, clients, sources, layers, progress) as src:
        yield src.layout, src.image


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temporary directory, removed with what it holds when the block ends."""
    from ocibuild.atomic import TMP_PREFIX

    path = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + "copy-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _opened(ref: ImageRef, store: Store | None, platform: Platform | None,
            clients: ClientPool | None, sources: BlobSources | None,
            layers: bool, progress: StepProgress | None = None) -> Iterator[_Opened]:
    if ref.transport == STORE:
        if store is None:
            raise UsageError(f"{ref}: no store to read from")
        assert ref.name is not None
        image = store.resolve_image(ref.name, platform)
        if image is None:
            raise UsageError(f"{ref.name}: no such image in the local store ({store.root})")
        yield _Opened(store.layout, image, False)
        return
    if ref.transport == OCI:
        assert ref.path is not None
        try:
            layout = ImageLayout.open(ref.path)
            image = load_image(layout, ref.name, platform)
        except LayoutError as exc:
            raise OcibuildError(f"{ref}: {exc.message}") from None
        yield _Opened(layout, image, False)
        return
    with scratch_dir() as work:
        if ref.transport == OCI_ARCHIVE:
            from ocibuild.oci import layout_tar

            assert ref.path is not None
            layout = layout_tar.unpack(ref.path, work / "layout")
            try:
                image = load_image(layout, ref.name, platform)
            except LayoutError as exc:
                raise OcibuildError(f"{ref}: {exc.message}") from None
            yield _Opened(layout, image, True)
        elif ref.transport == DOCKER_ARCHIVE:
            from ocibuild.registry.archives import image_from_docker_archive

            layout = ImageLayout.init(work / "layout")
            assert ref.path is not None
            text = f"{ref.path}:{ref.name}" if ref.name else str(ref.path)
            yield _Opened(layout, image_from_docker_archive(text, layout), True)
        else:
            yield _from_registry(ref, ImageLayout.init(work / "layout"), platform, clients,
                                 sources, layers, progress)


def _from_registry(ref: ImageRef, layout: ImageLayout, platform: Platform | None,
                   clients: ClientPool | None, sources: BlobSources | None,
                   layers: bool, progress: StepProgress | None) -> _Opened:
    from ocibuild.oci import limits
    from ocibuild.oci.config import ImageConfig
    from ocibuild.reference import parse_reference
    from ocibuild.registry.pull import fetch_blob, pull, resolve_manifest

    assert ref.name is not None and clients is not None
    rref = parse_reference(ref.name)
    if layers:
        image = pull(rref, layout, platform=platform, clients=clients, sources=sources,
                     progress=progress)
        return _Opened(layout, image, True, (rref.registry, rref.repository))
    what = f"inspect {ref}"
    client = clients.get(rref.registry)
    desc, manifest, data = resolve_manifest(client, rref, platform, what)
    fetch_blob(client, rref.repository, manifest.config, layout, what)
    layout.put_bytes(data)
    config = ImageConfig.from_bytes(limits.read_blob(
        layout, manifest.config.digest, limits.IMAGE_CONFIG, what,  # type: ignore[arg-type]
        manifest.config.size))
    if sources is not None:
        sources.add(rref.registry, rref.repository,
                    [manifest.config.digest, *(x.digest for x in manifest.layers)])
    return _Opened(layout, Image(desc, manifest, config), True,
                   (rref.registry, rref.repository))


# -- writing ---------------------------------------------------------------------------
def copy_blobs(src: ImageLayout, image: Image, dest: ImageLayout) -> None:
    """Copy `image`'s config, layers and manifest into `dest`, each verified."""
    if src.path == dest.path:
        return
    from ocibuild.registry.archives import copy_image as copy_verified

    copy_verified(src, image, dest)


def _layout_entry(layout: ImageLayout, desc: Descriptor, name: str | None) -> None:
    """Name `desc` in the layout's index by `name`, or add it untagged."""
    if name and not _digest.is_digest(name):
        layout.tag(name, desc)
        return
    with layout.locked():
        idx = layout.index()
        if any(m.digest == desc.digest and REF_NAME not in m.annotations
               for m in idx.manifests):
            return
        layout.write_index(Index((*idx.manifests, desc), idx.media_type, idx.annotations))


def _plain(desc: Descriptor) -> Descriptor:
    return Descriptor(desc.media_type, desc.digest, desc.size, platform=desc.platform)


def write_image(layout: ImageLayout, image: Image, dest: ImageRef, *,
                store: Store | None = None, clients: ClientPool | None = None,
                sources: BlobSources | None = None, progress: StepProgress | None = None
                ) -> str:
    """Write `image` (blobs in `layout`) to `dest`; returns the manifest digest written.
    Uploads are shown under `progress`."""
    desc = _plain(image.descriptor)
    if dest.transport == STORE:
        if store is None:
            raise UsageError(f"{dest}: no store to write to")
        assert dest.name is not None
        copy_blobs(layout, image, store.layout)
        store.tag(dest.name, desc)
    elif dest.transport == OCI:
        assert dest.path is not None
        if dest.path.exists() and not (dest.path / "oci-layout").is_file() and \
                (not dest.path.is_dir() or any(dest.path.iterdir())):
            raise UsageError(f"{dest}: {dest.path} exists and is not an OCI image layout; "
                             "give an empty or new directory")
        out = ImageLayout.init(dest.path)
        copy_blobs(layout, image, out)
        _layout_entry(out, desc, dest.name)
    elif dest.transport == OCI_ARCHIVE:
        from ocibuild.oci import layout_tar

        assert dest.path is not None
        dest.path.parent.mkdir(parents=True, exist_ok=True)
        with scratch_dir() as work:
            out = ImageLayout.init(work / "layout")
            copy_blobs(layout, image, out)
            _layout_entry(out, desc, dest.name)
            layout_tar.pack(out, dest.path)
    elif dest.transport == DOCKER_ARCHIVE:
        from ocibuild.cache.names import normalize_name
        from ocibuild.exporter.docker_archive import export_docker_archive

        assert dest.path is not None
        tags = [normalize_name(dest.name)] if dest.name else []
        export_docker_archive(layout, image.digest, dest.path, tags)
    else:
        from ocibuild.reference import parse_reference
        from ocibuild.registry.push import push_image

        assert dest.name is not None
        push_image(layout, desc, [parse_reference(dest.name)], clients=clients,
                   sources=sources, progress=progress)
    return image.digest


# -- copying ---------------------------------------------------------------------------
COMPRESSIONS = ("gzip", "zstd")


@dataclass(frozen=True)
class CopyResult:
    """What `ocibuild copy` wrote: the manifest digest, and which layers it recompressed."""
    digest: str  # the manifest digest written
    converted: int  # layers recompressed


def _recompress(layout: ImageLayout, image: Image, compression: str,
                memo_dir: Path | None) -> tuple[Image, int]:
    """`image` with each layer in `compression` (new blobs and manifest in `layout`)."""
    from ocibuild.oci.convert import convert_layer

    layers: list[Descriptor] = []
    converted = 0
    for layer, diff_id in zip(image.manifest.layers, image.config.diff_ids, strict=True):
        if mediatypes.layer_compression(layer.media_type) == compression:
            layers.append(Descriptor(mediatypes.oci_layer_type(compression), layer.digest,
                                     layer.size, annotations=layer.annotations))
            continue
        layers.append(convert_layer(layout, layer, diff_id, compression, None, memo_dir))
        converted += 1
    if not converted:
        return image, 0
    config = Descriptor(mediatypes.OCI_CONFIG, image.manifest.config.digest,
                        image.manifest.config.size)
    manifest = Manifest(config=config, layers=tuple(layers),
                        annotations=dict(image.manifest.annotations))
    desc = layout.put_manifest(manifest)
    return Image(Descriptor(desc.media_type, desc.digest, desc.size,
                            platform=image.descriptor.platform), manifest, image.config), converted


@contextlib.contextmanager
def _writable(opened: _Opened, store: Store | None
              ) -> Iterator[tuple[ImageLayout, Path | None]]:
    """A layout holding the opened image that recompressed layers may be added to, and
    where the store remembers conversions (None: nowhere). The source's own layout is
    used only when it is this copy's scratch or the store; a user's layout is not
    written to, the image is copied to a scratch layout first."""
    if store is not None and opened.layout is store.layout:
        from ocibuild.oci.convert import CONVERSIONS

        yield opened.layout, store.root / CONVERSIONS
    elif opened.scratch:
        yield opened.layout, None
    else:
        with scratch_dir() as work:
            scratch = ImageLayout.init(work / "layout")
            copy_blobs(opened.layout, opened.image, scratch)
            yield scratch, None


def copy_image(src: ImageRef, dest: ImageRef, *, store: Store | None = None,
               platform: Platform | None = None, clients: ClientPool | None = None,
               sources: BlobSources | None = None, compression: str | None = None,
               all_platforms: bool = False, progress: StepProgress | None = None
               ) -> CopyResult:
    """Copy one image from `src` to `dest` (see the module doc); `all_platforms`: a
    multi-platform image whole, its index and every platform's image (skopeo's --all).
    Registry transfers are shown under `progress`, blob by blob."""
    if compression is not None and compression not in COMPRESSIONS:
        raise UsageError(f"--dest-compress-format {compression!r}: expected gzip or zstd")
    if all_platforms:
        if compression is not None:
            raise UsageError("--all and --dest-compress-format cannot be combined yet")
        if dest.transport == DOCKER_ARCHIVE:
            raise UsageError(f"{dest}: a docker-archive holds one platform's image; "
                             "copy without --all")
    if dest.transport in (OCI_ARCHIVE, DOCKER_ARCHIVE) and src.path is not None \
            and dest.path is not None and src.path.resolve() == dest.path.resolve():
        raise UsageError(f"copy {src} {dest}: the source and destination are the same file")
    own = clients is None and DOCKER in (src.transport, dest.transport)
    if own:
        from ocibuild.registry.client import ClientPool

        clients = ClientPool()
    try:
        if src.transport == DOCKER and dest.transport == STORE and compression is None \
                and store is not None and not all_platforms:  # no second copy
            return CopyResult(_pull_into_store(src, dest, store, platform, clients, sources,
                                               progress), 0)
        if all_platforms and src.transport != DOCKER_ARCHIVE:
            with _opened_whole(src, store, clients, sources, progress) as (layout, root,
                                                                           children):
                if not children:  # one image only: copied as it is
                    image = load_image(layout, root.digest)
                    return CopyResult(write_image(layout, image, dest, store=store,
                                                  clients=clients, sources=sources,
                                                  progress=progress), 0)
                return CopyResult(_write_whole(layout, root, children, dest, store, clients,
                                               sources, progress), 0)
        lazy = src.transport == DOCKER and dest.transport == DOCKER and compression is None
        with _opened(src, store, platform, clients, sources, not lazy, progress) as opened:
            if lazy:
                return CopyResult(_push_mounting(opened, dest, clients, sources, progress), 0)
            if compression is None or dest.transport == DOCKER_ARCHIVE:  # its layers are tar
                return CopyResult(write_image(opened.layout, opened.image, dest, store=store,
                                              clients=clients, sources=sources,
                                              progress=progress), 0)
            with _writable(opened, store) as (layout, memo):
                image, converted = _recompress(layout, opened.image, compression, memo)
                return CopyResult(write_image(layout, image, dest, store=store,
                                              clients=clients, sources=sources,
                                              progress=progress), converted)
    finally:
        if own and clients is not None:
            clients.close()


def _pull_into_store(src: ImageRef, dest: ImageRef, store: Store, platform: Platform | None,
                     clients: ClientPool | None, sources: BlobSources | None,
                     progress: StepProgress | None) -> str:
    from ocibuild.reference import parse_reference
    from ocibuild.registry.pull import pull

    assert src.name is not None and dest.name is not None
    image = pull(parse_reference(src.name), store.layout, platform=platform, clients=clients,
                 sources=sources, progress=progress)
    store.tag(dest.name, _plain(image.descriptor))
    return image.digest


def _push_mounting(src: _Opened, dest: ImageRef, clients: ClientPool | None,
                   sources: BlobSources | None, progress: StepProgress | None) -> str:
    """docker:// to docker://: layers are mounted from the source repository when both
    are in one registry, else fetched from the source only as the push needs them."""
    from ocibuild.reference import parse_reference
    from ocibuild.registry.blob_sources import BlobSources as Sources
    from ocibuild.registry.pull import fetch_blob
    from ocibuild.registry.push import push_blobs

    assert clients is not None and src.registry is not None and dest.name is not None
    registry, repository = src.registry
    if sources is None:
        sources = Sources()
        sources.add(registry, repository,
                    [src.image.manifest.config.digest,
                     *(x.digest for x in src.image.manifest.layers)])
    source_client = clients.get(registry)
    ref = parse_reference(dest.name)
    client = clients.get(ref.registry)

    def fetch(blob: Descriptor) -> bool:
        fetch_blob(source_client, repository, blob, src.layout, f"copy from {registry}")
        return True

    push_blobs(client, ref.repository, src.layout,
               [src.image.manifest.config, *src.image.manifest.layers],
               what=f"copy to {ref}", sources=sources, fetch=fetch, progress=progress)
    data = src.layout.read_blob(src.image.digest)
    client.put_manifest(ref.repository, ref.tag or ref.digest or src.image.digest, data,
                        src.image.descriptor.media_type, f"copy to {ref}")
    return src.image.digest


# -- whole multi-platform images (--all) ---------------------------------------------------
@contextlib.contextmanager
def _opened_whole(ref: ImageRef, store: Store | None, clients: ClientPool | None,
                  sources: BlobSources | None, progress: StepProgress | None
                  ) -> Iterator[tuple[ImageLayout, Descriptor, list[Image]]]:
    """The root `ref` names (an index, or a lone manifest) in a layout holding every blob,
    with the images of the index's platforms ([] for a manifest)."""
    from ocibuild.oci import limits
    from ocibuild.oci.manifest import parse_manifest_or_index

    if ref.transport == DOCKER:
        with scratch_dir() as work:
            layout = ImageLayout.init(work / "layout")
            yield (layout, *_pull_whole(ref, layout, clients, sources, progress))
        return
    with contextlib.ExitStack() as stack:
        if ref.transport == STORE:
            if store is None:
                raise UsageError(f"{ref}: no store to read from")
            assert ref.name is not None
            root = store._lookup(ref.name)
            if root is None:
                raise UsageError(f"{ref.name}: no such image in the local store "
                                 f"({store.root})")
            layout = store.layout
        else:
            assert ref.path is not None
            try:
                if ref.transport == OCI:
                    layout = ImageLayout.open(ref.path)
                else:
                    from ocibuild.oci import layout_tar

                    work = stack.enter_context(scratch_dir())
                    layout = layout_tar.unpack(ref.path, work / "layout")
                root = layout.resolve(ref.name)
            except LayoutError as exc:
                raise OcibuildError(f"{ref}: {exc.message}") from None
        data = limits.read_blob(layout, root.digest, limits.MANIFEST,  # type: ignore[arg-type]
                                str(ref), root.size)
        doc = parse_manifest_or_index(data, root.media_type)
        root = Descriptor(doc.media_type, root.digest, root.size)
        children = [load_image(layout, child.digest) for child in doc.manifests] \
            if isinstance(doc, Index) else []
        yield layout, root, children


def _pull_whole(ref: ImageRef, layout: ImageLayout, clients: ClientPool | None,
                sources: BlobSources | None, progress: StepProgress | None
                ) -> tuple[Descriptor, list[Image]]:
    from ocibuild.oci.manifest import parse_manifest_or_index
    from ocibuild.reference import parse_reference
    from ocibuild.registry.pull import pull

    assert ref.name is not None and clients is not None
    rref = parse_reference(ref.name)
    what = f"copy {ref}"
    data, media_type, _ = clients.get(rref.registry).get_manifest(rref.repository,
                                                                  rref.identifier, what)
    digest = _digest.of_bytes(data)
    if rref.digest and digest != rref.digest:
        raise OcibuildError(f"{what}: the registry sent a manifest with digest {digest}")
    doc = parse_manifest_or_index(data, media_type)
    if not isinstance(doc, Index):
        image = pull(rref.with_digest(digest), layout, clients=clients, sources=sources,
                     progress=progress)
        return _plain(image.descriptor), []
    children = [pull(rref.with_digest(child.digest), layout, clients=clients,
                     sources=sources, progress=progress) for child in doc.manifests]
    layout.put_bytes(data)
    return Descriptor(doc.media_type, digest, len(data)), children


def _write_whole(layout: ImageLayout, root: Descriptor, children: list[Image], dest: ImageRef,
                 store: Store | None, clients: ClientPool | None,
                 sources: BlobSources | None, progress: StepProgress | None) -> str:
    """Write the index `root` with its platforms' images to `dest` (not a docker-archive)."""
    if dest.transport == DOCKER:
        from ocibuild.reference import parse_reference
        from ocibuild.registry.push import push_image

        assert dest.name is not None
        push_image(layout, root, [parse_reference(dest.name)], clients=clients,
                   sources=sources, progress=progress)
        return root.digest

    def fill(out: ImageLayout) -> None:
        for child in children:
            copy_blobs(layout, child, out)
        if not out.has_blob(root.digest):
            out.put_bytes(layout.read_blob(root.digest))

    if dest.transport == STORE:
        assert store is not None and dest.name is not None
        fill(store.layout)
        store.tag(dest.name, root)
    elif dest.transport == OCI:
        assert dest.path is not None
        out = ImageLayout.init(dest.path)
        fill(out)
        _layout_entry(out, root, dest.name)
    else:
        from ocibuild.oci import layout_tar

        assert dest.path is not None
        dest.path.parent.mkdir(parents=True, exist_ok=True)
        with scratch_dir() as work:
            out = ImageLayout.init(work / "layout")
            fill(out)
            _layout_entry(out, root, dest.name)
            layout_tar.pack(out, dest.path)
    return root.digest
