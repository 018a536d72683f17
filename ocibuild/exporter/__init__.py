"""Outputs of a build: the local store (default), an OCI layout dir or tar, a
docker-archive tar, a local directory; plus --iidfile and --metadata-file.

Every output is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.atomic import TMP_PREFIX
from ocibuild.cache import names
from ocibuild.errors import DiskFullError, OcibuildError, UsageError, is_disk_full, os_error
from ocibuild.exporter import annotation_keys as ann
from ocibuild.exporter.metadata import write_iidfile, write_metadata_file
from ocibuild.exporter.options import ImageOptions
from ocibuild.exporter.results import BuildResult, ExportReport
from ocibuild.exporter.spec import OUTPUT_TYPES, OutputSpec, parse_output
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.mediatypes import COMPRESSIONS

if TYPE_CHECKING:
    from ocibuild.attest import Predicate
    from ocibuild.cache.store import Store
    from ocibuild.progress.transfer import StepProgress


def _image_names(tags: Sequence[str], spec: OutputSpec | None) -> list[str]:
    """The names of an output: its name= (comma-separated), else the -t tags (buildx
    gives an output the tags only when it names no image itself)."""
    given = spec.attrs.get("name", "") if spec is not None else ""
    found = [n.strip() for n in given.split(",") if n.strip()] or list(tags)
    return list(dict.fromkeys(names.normalize_name(n) for n in found))


_IMPLICIT_PUSH = OutputSpec("image", {"push": "true"})


def _pushed_outputs(outputs: Sequence[OutputSpec], push: bool) -> list[OutputSpec]:
    """The outputs whose image is pushed. `--push` works as in buildx: it sets push=true
    on every type=image output, or adds one (named by the tags) when there is none."""
    found = [s for s in outputs if s.type in ("store", "image") and s.push]
    if push:
        images = [s for s in outputs if s.type == "image"]
        found += [s for s in images if not s.push] or [_IMPLICIT_PUSH]
    return found


def push_targets(outputs: Sequence[OutputSpec], tags: Sequence[str], push: bool
                 ) -> list[str]:
    """The full names a build pushes: those of each pushed output (its name=, else the
    tags). Checked before the build runs, so a push without a name fails at once."""
    found: list[str] = []
    for spec in _pushed_outputs(outputs, push):
        image_names = _image_names(tags, spec)
        if not image_names:
            if spec is _IMPLICIT_PUSH:
                raise UsageError("--push needs a name to push to: add -t REGISTRY/REPO:TAG")
            raise UsageError("-o type=image,push=true needs name=REF (or -t REF)")
        found += image_names
    return list(dict.fromkeys(found))


def parse_annotations(texts: Sequence[str]) -> tuple[ann.Annotation, ...]:
    """`--annotation` values ([TYPE[[OS/ARCH]][,TYPE...]:]KEY=VALUE), as buildx reads
    them; an empty value is skipped, as buildx does."""
    return tuple(a for t in texts if t for a in ann.parse_flag(t))


def reads_layer_blobs(outputs: Sequence[OutputSpec], to_push: Sequence[str]) -> bool:
    """Whether an output reads the build's layer blobs: anything but the store (a
    build without one leaves its blobs for the store to make when asked,
    cache.lazy_blobs)."""
    return bool(to_push) or any(spec.type not in ("store", "image") for spec in outputs)


def solve_compression(outputs: Sequence[OutputSpec], default: str) -> str:
    """The compression the build's own layers are made in: the first image output's
    compression= (so that output needs no conversion), else `default`."""
    for spec in outputs:
        if spec.writes_manifest and (asked := spec.image_options().compression):
            return asked
    return default


class _Images:
    """The manifests the outputs ask for, each written once per distinct ImageOptions."""

    def __init__(self, store: Store, result: BuildResult, compression: str,
                 annotations: Sequence[ann.Annotation],
                 attestations: Sequence[Predicate] = (),
                 progress: StepProgress | None = None) -> None:
        if compression not in COMPRESSIONS:
            raise UsageError(f"unknown compression {compression!r}; use one of {COMPRESSIONS}")
        self._store, self._result, self._compression = store, result, compression
        self._annotations = tuple(annotations)
        self._written: dict[ImageOptions, Descriptor] = {}
        self._attestations = tuple(attestations)
        self._progress = progress
        self._attested: dict[tuple[str, tuple[str, ...]], Descriptor] = {}

    def get(self, options: ImageOptions, where: str, *, annotated: bool = True) -> Descriptor:
        """The image `options` describe; `annotated`: with the --annotation ones too."""
        from ocibuild.exporter.image_writer import write_output_image

        if annotated:
            options = options.with_annotations(self._annotations)
        if options not in self._written:
            self._written[options] = write_output_image(self._store, self._result, options,
                                                        self._compression, where)
        return self._written[options]

    def of(self, spec: OutputSpec) -> Descriptor:
        return self.get(spec.image_options(), f"--output type={spec.type}")

    def held(self, spec: OutputSpec, image_names: Sequence[str]) -> Descriptor:
        """What the output holds: its image, or with attestations the index of the image
        and its attestation manifest (statements naming `image_names`)."""
        image = self.of(spec)
        if not self._attestations:
            return image
        key = (image.digest, tuple(image_names))
        if key not in self._attested:
            from ocibuild.attest import statements_for
            from ocibuild.attest.manifest import index_with_attestations

            statements = statements_for(self._attestations, image.digest, image_names,
                                        str(image.platform or ""))
            index = index_with_attestations(self._store.layout, [(image, statements)])
            self._attested[key] = index
            if self._progress is not None:  # what BuildKit's exporter says it wrote
                from ocibuild.oci.manifest import Index

                doc = Index.from_bytes(self._store.layout.read_blob(index.digest))
                for entry in doc.manifests[1:]:
                    self._progress.status(f"exporting attestation manifest {entry.digest}")
                self._progress.status(f"exporting manifest list {index.digest}")
        return self._attested[key]


def export(result: BuildResult, outputs: Sequence[OutputSpec], store: Store, *,
           tags: Sequence[str] = (), compression: str = "gzip",
           annotations: Sequence[ann.Annotation] = (), push: bool = False,
           progress: StepProgress | None = None,
           attestations: Sequence[Predicate] = ()) -> ExportReport:
    """Write the image of `result` to every output (the local store when none is given);
    a tar output's bytes are shown under `progress`.

    `compression` is the layer compression of outputs that do not choose one;
    `annotations` (from --annotation) go to every output that writes a manifest; `push`
    is --push (see _pushed_outputs). With `attestations`, every output that holds a
    manifest (store, image, oci) holds the index of the image and its attestations.
    """
    outputs = list(outputs) or [OutputSpec("store", {})]
    images = _Images(store, result, compression, annotations, attestations, progress)
    all_names = _image_names(tags, None)
    first = next((s for s in outputs if s.writes_manifest), None)
    # with only docker and local outputs (which hold no manifest) the image is unannotated
    manifest = (images.of(first) if first is not None
                else images.get(ImageOptions(), "the image", annotated=False))
    attested = (images.held(first, _image_names(tags, first))
                if first is not None and attestations else None)
    pushes = [(images.held(spec, names), names)
              for spec in _pushed_outputs(outputs, push)
              for names in [tuple(_image_names(tags, spec))]]
    config_digest = result.config.digest
    to_store = False
    for spec in outputs:
        image_names = _image_names(tags, spec)
        all_names += [n for n in image_names if n not in all_names]
        if spec.type in ("store", "image"):
            image = images.held(spec, image_names)
            for name in image_names:
                store.tag(name, image)
            to_store = True
        elif spec.type in ("oci", "docker", "local"):
            _write_file_output(spec, store, result, images, manifest, image_names, progress)
            to_store = to_store or spec.type == "docker"  # a daemon's ID: the config's
        else:  # parse_output rejects others; a hand-made OutputSpec may not
            raise UsageError(f"unknown output type {spec.type!r}; use one of {OUTPUT_TYPES}")
    # the image ID: the config's (a store or daemon) or, as buildx's, what the outputs hold
    return ExportReport(manifest, config_digest, tuple(all_names),
                        config_digest if to_store else (attested or manifest).digest,
                        tuple(pushes), attested)


def _write_file_output(spec: OutputSpec, store: Store, result: BuildResult, images: _Images,
                       manifest: Descriptor, image_names: list[str],
                       progress: StepProgress | None = None) -> None:
    """Write an oci, docker or local output; a destination it cannot write is one message
    naming it and the reason."""
    dest = Path(spec.attrs["dest"])
    # in the store: not this output
    image = images.held(spec, image_names) if spec.type == "oci" else None
    try:
        if image is not None:
            from ocibuild.exporter.oci import export_oci

            export_oci(store.layout, image, dest, spec.attrs, image_names, progress)
        elif spec.type == "docker":
            from ocibuild.exporter.docker_archive import export_docker_archive

            export_docker_archive(store.layout, manifest.digest, dest, image_names, progress)
        else:
            from ocibuild.exporter.local import export_local

            export_local(store.layout, result.layers, dest)
    except OSError as exc:
        raise os_error(exc, f"--output type={spec.type},dest={dest}: cannot write",
                       _failed_path(exc, dest)) from exc
    except OcibuildError as exc:  # a layer extracted into a local output's directory
        if not is_disk_full(exc) or isinstance(exc, DiskFullError) and exc.filled:
            raise
        raise DiskFullError(f"--output type={spec.type},dest={dest}: {exc.message}",
                            filled=dest) from exc


def _failed_path(exc: OSError, dest: Path) -> Path:
    """The path an output's write failed on: a rename's target, the directory of a
    temporary file beside the destination, else the destination."""
    name = exc.filename2 if exc.filename2 is not None else exc.filename
    if name is None:
        return dest
    path = Path(os.fsdecode(name))
    return path.parent if path.name.startswith(TMP_PREFIX) else path


__all__ = ["BuildResult", "ExportReport", "OutputSpec", "export", "parse_annotations",
           "parse_output", "push_targets", "solve_compression", "write_iidfile",
           "write_metadata_file"]
