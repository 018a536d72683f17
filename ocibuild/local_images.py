"""The store's images as a user manages them: tag, remove (untag), list with filters.

These are what `ocibuild tag`, `rmi` and `images` run, and what the public API wraps.
Removing an image only drops its names: its blobs go with the next `cache prune`
(or at once with `prune=True`), as nothing else refers to them then.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.cache import names
from ocibuild.errors import OcibuildError, UsageError
from ocibuild.oci.descriptor import Descriptor

if TYPE_CHECKING:
    from ocibuild.cache.prune import PruneReport
    from ocibuild.cache.store import Store
    from ocibuild.oci.image import Image
    from ocibuild.oci.layout import ImageLayout
    from ocibuild.oci.platform import Platform

__all__ = ["SAVE_FORMATS", "ImageNotFoundError", "ImageSummary", "RemoveReport", "archive_kind",
           "filter_images", "image_summaries", "list_images", "load_images", "names_of",
           "parse_filters", "remove_images", "save_images", "tag_image"]


class ImageNotFoundError(UsageError):
    """No image in the store has that name, digest or ID."""


@dataclass(frozen=True)
class ImageSummary:
    """One name of an image in the store, as `ocibuild images` lists it."""

    name: str  # the full name: docker.io/library/busybox:latest
    repository: str  # the familiar form: busybox
    tag: str  # "<none>" for a name by digest only
    digest: str  # the manifest (or index) digest
    id: str  # the config digest, sha256:...
    created: str  # RFC 3339, "" when the config has none
    size: int  # config and compressed layers, in bytes
    # an index (a multi-platform image): its platforms; the row's ID, size and date are
    # this host's image's (else the first listed); () for a single image
    platforms: tuple[str, ...] = ()

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def dangling(self) -> bool:
        return self.tag == "<none>"


def _find(store: Store, name: str) -> Descriptor:
    desc = store._lookup(name)
    if desc is None:
        raise ImageNotFoundError(f"{name}: no such image in the local store ({store.root})")
    return desc


def tag_image(store: Store, source: str, targets: Sequence[str]) -> list[str]:
    """Give the image `source` (a name, digest or image ID) the names `targets`; returns
    their full forms."""
    if not targets:
        raise UsageError("tag: name at least one new name for the image")
    desc = _find(store, source)
    for target in targets:
        if "@" in target:
            raise UsageError(f"tag {target}: a new name takes a tag, not a digest")
    fulls = [names.normalize_name(t) for t in targets]  # all checked before any is written
    return [store.tag(full, desc) for full in fulls]


@dataclass
class RemoveReport:
    """What `remove_images` did."""

    untagged: list[str]  # full names removed
    pruned: PruneReport | None = None


def names_of(store: Store, desc: Descriptor) -> list[str]:
    """Every full name the store gives the image `desc` names."""
    return sorted(n for n, d in store.images().items() if d.digest == desc.digest)


def remove_images(store: Store, refs: Sequence[str], *, force: bool = False,
                  prune: bool = False) -> RemoveReport:
    """Remove the names `refs` give. A name removes only itself; a digest or image ID
    removes every name of that image, which needs `force` when there are several (as
    docker and podman refuse an ID with many names). `prune` then removes the blobs and
    cache no other image uses (`cache prune`)."""
    plan: list[str] = []
    for ref in refs:
        desc = _find(store, ref)
        all_names = names_of(store, desc)
        try:
            full = names.normalize_name(ref)
        except OcibuildError:
            full = ""
        if full in all_names:
            chosen = [full]
        else:  # by ID or digest
            if len(all_names) > 1 and not force:
                shown = ", ".join(names.familiar_name(n) for n in all_names)
                raise UsageError(f"rmi {ref}: the image has {len(all_names)} names ({shown}); "
                                 "remove them by name or use --force")
            chosen = all_names
        plan += [n for n in chosen if n not in plan]
    report = RemoveReport([n for n in plan if store.untag(n)])
    if prune:
        from ocibuild.cache.prune import prune as prune_cache

        report.pruned = prune_cache(store)
    return report


def image_summaries(store: Store) -> tuple[list[ImageSummary], list[str]]:
    """Every name in the store with its image, sorted by name; and one warning per name
    whose image cannot be read."""
    from ocibuild.oci.image import load_image

    rows: list[ImageSummary] = []
    warnings: list[str] = []
    for full, desc in sorted(store.images().items()):
        try:
            platforms = _index_platforms(store, desc)
            image = load_image(store.layout, desc.digest, _shown_platform(platforms))
        except OcibuildError as exc:
            warnings.append(f"{full}: {exc.message}")
            continue
        repo, tag = names.split_repository_tag(full)
        size = image.manifest.config.size + sum(layer.size for layer in image.manifest.layers)
        rows.append(ImageSummary(full, repo, tag, desc.digest, image.manifest.config.digest,
                                 image.config.created, size, tuple(map(str, platforms))))
    return rows, warnings


def _index_platforms(store: Store, desc: Descriptor) -> list[Platform]:
    from ocibuild.oci import mediatypes
    from ocibuild.oci.manifest import Index

    if desc.media_type not in mediatypes.INDEX_TYPES:
        return []
    index = Index.from_bytes(store.layout.read_blob(desc.digest), desc.media_type)
    return [m.platform for m in index.manifests if m.platform is not None]


def _shown_platform(platforms: Sequence[Platform]) -> Platform | None:
    """The platform whose image a row of an index describes: the host's, else the
    first (None: a single image, or an index the host's platform is in)."""
    from ocibuild.oci.platform import host

    here = host()
    if not platforms or any(here.matches(p) for p in platforms):
        return None
    return platforms[0]


FILTER_KEYS = ("reference", "dangling")


def parse_filters(texts: Iterable[str]) -> dict[str, list[str]]:
    """`KEY=VALUE` filters (`reference=PATTERN`, `dangling=true|false`) by key."""
    filters: dict[str, list[str]] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        key = key.strip().lower()
        if not sep or key not in FILTER_KEYS:
            raise UsageError(f"--filter {text!r}: expected reference=PATTERN or "
                             "dangling=true|false")
        if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
            raise UsageError(f"--filter {text!r}: dangling takes true or false")
        filters.setdefault(key, []).append(value)
    return filters


def _reference_matches(row: ImageSummary, pattern: str) -> bool:
    """As docker: the pattern is matched against the familiar name with and without its
    tag (busybox, busybox:latest), and against the full name."""
    familiar = f"{row.repository}:{row.tag}"
    candidates = [row.repository, familiar, row.name, row.name.rsplit(":", 1)[0]]
    return any(fnmatch.fnmatchcase(c, pattern) for c in candidates)


def list_images(store: Store, filters: dict[str, list[str]] | None = None
                ) -> list[ImageSummary]:
    """The store's image names matching `filters` (from parse_filters): a name passes
    when any reference pattern matches it and it is dangling as asked."""
    rows, _ = image_summaries(store)
    return filter_images(rows, filters or {})


def filter_images(rows: Sequence[ImageSummary], filters: dict[str, list[str]]
                  ) -> list[ImageSummary]:
    out = list(rows)
    if filters.get("reference"):
        out = [r for r in out if any(_reference_matches(r, p) for p in filters["reference"])]
    for value in filters.get("dangling", []):
        want = value.lower() in ("true", "1")
        out = [r for r in out if r.dangling == want]
    return out


# -- loading archives --------------------------------------------------------------------
def _fallback_repository(path: Path) -> str:
    """localhost/STEM for an archive's image without a name (STEM made a valid name)."""
    stem = re.sub(r"[^a-z0-9._-]+", "-", path.name.lower().split(".")[0]).strip("-._")
    return f"localhost/{stem or 'loaded'}"


def _layout_name(entry: Descriptor, path: Path) -> str:
    """The name an OCI layout's index entry gives its image: the containerd name, else a
    ref.name that is a full name, else localhost/STEM with ref.name as the tag, else the
    image stays nameless (a dangling name by digest)."""
    from ocibuild.exporter.oci import CONTAINERD_NAME
    from ocibuild.oci.layout import REF_NAME

    for candidate in (entry.annotations.get(CONTAINERD_NAME), entry.annotations.get(REF_NAME)):
        if candidate and ("/" in candidate or ":" in candidate):
            with contextlib.suppress(OcibuildError):
                return names.normalize_name(candidate)
    tag = entry.annotations.get(REF_NAME)
    if tag:
        with contextlib.suppress(OcibuildError):
            return names.normalize_name(f"{_fallback_repository(path)}:{tag}")
    return ""


def archive_kind(path: Path) -> str:
    """What `path` holds: "oci-dir" (an OCI image layout), "oci-archive" or
    "docker-archive"; a UsageError for anything else."""
    import tarfile

    if path.is_dir():
        if (path / "oci-layout").is_file():
            return "oci-dir"
        raise UsageError(f"load {path}: a directory that is not an OCI image layout")
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name == "oci-layout":
                    return "oci-archive"
                if name == "manifest.json":
                    return "docker-archive"
    except (OSError, tarfile.TarError) as exc:
        raise UsageError(f"load {path}: not a readable tar archive: {exc}") from None
    raise UsageError(f"load {path}: neither an OCI archive nor a docker-archive "
                     "(no oci-layout or manifest.json)")


def load_images(store: Store, path: Path, kind: str | None = None) -> list[tuple[str, str]]:
    """Load every image of an archive (`kind`: docker-archive, oci-archive or oci-dir;
    None: found out) into the store, named as the archive names it; returns
    [(full name or "", manifest digest)]. A nameless image is named
    localhost/STEM@DIGEST (listed as dangling)."""
    from ocibuild.transports import scratch_dir

    kind = kind or archive_kind(path)

    with scratch_dir() as work:
        if kind == "docker-archive":
            loaded = _load_docker_archive(store, path)
        else:
            from ocibuild.oci import layout_tar
            from ocibuild.oci.layout import ImageLayout

            layout = ImageLayout.open(path) if kind == "oci-dir" \
                else layout_tar.unpack(path, work / "layout")
            loaded = _load_layout(store, layout, path)
    return loaded


def _load_layout(store: Store, layout: ImageLayout, path: Path) -> list[tuple[str, str]]:
    from ocibuild.oci.image import load_image
    from ocibuild.transports import copy_blobs

    loaded = []
    for entry in layout.index().manifests:
        name = _layout_name(entry, path)
        if _whole_index(layout, entry):  # a multi-platform image: all of it
            from ocibuild.exporter.oci import copy_image

            copy_image(layout, store.layout, entry)
            desc = Descriptor(entry.media_type, entry.digest, entry.size)
        else:
            image = load_image(layout, entry.digest)
            copy_blobs(layout, image, store.layout)
            desc = Descriptor(image.descriptor.media_type, image.digest,
                              image.descriptor.size, platform=image.descriptor.platform)
        store.tag(name or f"{_fallback_repository(path)}@{desc.digest}", desc)
        loaded.append((name, desc.digest))
    return loaded


def _whole_index(layout: ImageLayout, entry: Descriptor) -> bool:
    """Whether `entry` is an index of image manifests the layout holds every one of."""
    from ocibuild.oci import mediatypes
    from ocibuild.oci.manifest import Index

    if entry.media_type not in mediatypes.INDEX_TYPES:
        return False
    children = Index.from_bytes(layout.read_blob(entry.digest), entry.media_type).manifests
    return all(c.media_type in mediatypes.MANIFEST_TYPES and layout.has_blob(c.digest)
               for c in children)


def _load_docker_archive(store: Store, path: Path) -> list[tuple[str, str]]:
    import json
    import tarfile

    from ocibuild.oci import limits
    from ocibuild.registry.archives import _member, image_from_docker_archive

    where = f"docker-archive:{path}"
    with tarfile.open(path, "r:") as tar:
        entries = json.loads(limits.read_capped(_member(tar, "manifest.json", where),
                                                limits.ARCHIVE_MANIFEST, where))
    if not isinstance(entries, list) or not entries:
        raise OcibuildError(f"{where}: manifest.json lists no image")
    loaded = []
    for entry in entries:
        tags = [t for t in entry.get("RepoTags") or [] if isinstance(t, str)]
        if not tags and len(entries) > 1:
            raise OcibuildError(f"{where}: an image without a name among {len(entries)}; "
                                "load it from an archive of its own")
        image = image_from_docker_archive(f"{path}:{tags[0]}" if tags else str(path),
                                          store.layout)
        desc = Descriptor(image.descriptor.media_type, image.digest, image.descriptor.size,
                          platform=image.descriptor.platform)
        if not tags:
            store.tag(f"{_fallback_repository(path)}@{image.digest}", desc)
            loaded.append(("", image.digest))
        for tag in tags:
            loaded.append((store.tag(tag, desc), image.digest))
    return loaded


# -- saving archives ---------------------------------------------------------------------
SAVE_FORMATS = ("docker-archive", "oci-archive", "oci-dir")


def save_images(store: Store, refs: Sequence[str], output: Path,
                fmt: str = "docker-archive") -> None:
    """Write the images `refs` name to `output`: a docker-archive (one image, under each
    name given), an oci-archive or an OCI layout directory (oci-dir; any number of
    images, each named in the index by its full name as containerd and podman do). A
    multi-platform image goes whole into the OCI formats (its index and every image);
    a docker-archive takes its image for this host."""
    if fmt not in SAVE_FORMATS:
        raise UsageError(f"save: unknown format {fmt!r} (use {', '.join(SAVE_FORMATS)})")
    if not refs:
        raise UsageError("save: name at least one image")
    from ocibuild.oci.image import load_image

    chosen: list[tuple[str, Image]] = []
    tops: list[Descriptor] = []  # what each name refers to: a manifest or an index
    for text in refs:
        top = store.lookup(text)
        if top is None:
            raise ImageNotFoundError(f"save {text}: no such image in the local store "
                                     f"({store.root})")
        chosen.append((_given_name(store, text, top.digest),
                       load_image(store.layout, top.digest)))
        tops.append(top)
    if fmt == "docker-archive":
        from ocibuild.exporter.docker_archive import export_docker_archive

        if len({image.digest for _, image in chosen}) > 1:
            raise UsageError("save: a docker-archive holds one image here; name one image "
                             "(several names of it are fine) or use --format oci-archive")
        export_docker_archive(store.layout, chosen[0][1].digest, output,
                              [n for n, _ in chosen if n])
        return
    from ocibuild.oci.layout import ImageLayout

    if fmt == "oci-dir":
        _fill_layout(store, chosen, tops, ImageLayout.init(output))
        return
    from ocibuild.oci import layout_tar
    from ocibuild.transports import scratch_dir

    output.parent.mkdir(parents=True, exist_ok=True)
    with scratch_dir() as work:
        layout = ImageLayout.init(work / "layout")
        _fill_layout(store, chosen, tops, layout)
        layout_tar.pack(layout, output)


def _fill_layout(store: Store, chosen: Sequence[tuple[str, Image]],
                 tops: Sequence[Descriptor], layout: ImageLayout) -> None:
    from ocibuild.exporter.oci import CONTAINERD_NAME, copy_image
    from ocibuild.oci.layout import REF_NAME
    from ocibuild.oci.manifest import Index
    from ocibuild.oci.mediatypes import INDEX_TYPES
    from ocibuild.transports import copy_blobs

    for (full, image), top in zip(chosen, tops, strict=True):
        if top.media_type in INDEX_TYPES:
            copy_image(store.layout, layout, top)
            desc = Descriptor(top.media_type, top.digest, top.size)
        else:
            copy_blobs(store.layout, image, layout)
            desc = image.descriptor
        entry = desc.with_annotations(**{REF_NAME: full, CONTAINERD_NAME: full}) if full \
            else desc
        with layout.locked():
            idx = layout.index()
            kept = [m for m in idx.manifests if m.annotations.get(REF_NAME) != full] if full \
                else [m for m in idx.manifests if m.digest != desc.digest
                      or REF_NAME in m.annotations]
            layout.write_index(Index((*kept, entry), idx.media_type, idx.annotations))


def _given_name(store: Store, text: str, digest: str) -> str:
    """The full name `text` gives, when it is one of the image's names ('' for an ID)."""
    try:
        full = names.normalize_name(text)
    except OcibuildError:
        return ""
    named = store.images().get(full)
    return full if named is not None and named.digest == digest else ""
