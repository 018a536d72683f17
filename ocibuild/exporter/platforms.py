"""Outputs of a multi-platform build: one image per platform under one image index.

Each output that holds manifests (the store, a pushed image, an OCI layout) gets every
platform's manifest written as its options ask, then an index of them in the order the
platforms were given (`oci.index.write_index`); names point at the index, and a push
sends the index and everything it names. `-o type=local` writes each platform's files
to `DEST/<os>_<arch>[_<variant>]/`, as buildx does. A docker archive or `--load` holds
one image only: asking for one with several platforms is refused before the build.

Annotations follow BuildKit: `index` ones go in the index, `index-descriptor` ones on
the index's entry in an OCI layout's index.json; `manifest` and
`manifest-descriptor` ones go to every platform's image, or to the one platform they
name (`manifest[linux/arm64]:K=V`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.errors import UsageError
from ocibuild.exporter import _image_names, _Images, _pushed_outputs, _write_file_output
from ocibuild.exporter import annotation_keys as ann
from ocibuild.exporter.options import ImageOptions
from ocibuild.exporter.results import BuildResult, ExportReport
from ocibuild.exporter.spec import OutputSpec
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.index import write_index

if TYPE_CHECKING:
    from ocibuild.attest import Predicate
    from ocibuild.cache.store import Store
    from ocibuild.progress.transfer import StepProgress

_INDEX_TYPES = (ann.INDEX, ann.INDEX_DESCRIPTOR)


def check_outputs(outputs: Sequence[OutputSpec], load: bool) -> None:
    """Refuse, before the build, an output that holds a single image."""
    if load or any(s.type == "docker" for s in outputs):
        what = "--load" if load else "--output type=docker"
        raise UsageError(f"{what} holds one image and cannot take a multi-platform build "
                         "(an image index); build one platform for it, or use "
                         "--output type=oci or --push")


class _Indexes(_Images):
    """The index each distinct ImageOptions asks for, written once: what the outputs
    get in place of a single-platform build's manifest."""

    def __init__(self, store: Store, results: Sequence[BuildResult], compression: str,
                 annotations: Sequence[ann.Annotation],
                 attestations: Sequence[Sequence[Predicate]], names: Sequence[str]) -> None:
        super().__init__(store, results[0], compression, annotations)
        self._results = results
        self._per_platform = attestations or [() for _ in results]
        self._names = names

    def get(self, options: ImageOptions, where: str, *, annotated: bool = True) -> Descriptor:
        from ocibuild.exporter.image_writer import write_output_image

        if annotated:
            options = options.with_annotations(self._annotations)
        if options in self._written:
            return self._written[options]
        manifests = []
        for result in self._results:
            platform = result.config.platform
            own = tuple(a for a in options.annotations if a.type not in _INDEX_TYPES
                        and (a.platform is None or a.platform.matches(platform)
                             and platform.matches(a.platform)))
            manifests.append(write_output_image(self._store, result,
                                                replace(options, annotations=own),
                                                self._compression, where))
        index_annotations = {a.key: a.value for a in options.annotations if a.type == ann.INDEX}
        entry_annotations = {a.key: a.value for a in options.annotations
                             if a.type == ann.INDEX_DESCRIPTOR}
        desc = write_index(self._store.layout, [*manifests, *self._attached(manifests)],
                           index_annotations)
        self._written[options] = desc.with_annotations(**entry_annotations)
        return self._written[options]

    def _attached(self, manifests: Sequence[Descriptor]) -> list[Descriptor]:
        """Each platform's attestation manifest (after all the images, as BuildKit
        orders an index), for the platforms that have attestations."""
        from ocibuild.attest import statements_for
        from ocibuild.attest.manifest import attestation_manifest

        return [attestation_manifest(self._store.layout, image, statements_for(
                    predicates, image.digest, self._names, str(image.platform or "")))
                for image, predicates in zip(manifests, self._per_platform, strict=True)
                if predicates]



def export_platforms(results: Sequence[BuildResult], outputs: Sequence[OutputSpec],
                     store: Store, *, tags: Sequence[str] = (), compression: str = "gzip",
                     annotations: Sequence[ann.Annotation] = (), push: bool = False,
                     progress: StepProgress | None = None,
                     attestations: Sequence[Sequence[Predicate]] = ()) -> ExportReport:
    """Write the images of `results` (one per platform, in order) as one index to every
    output (the local store when none is given); the report's manifest is the index and
    its image ID the index digest, as buildx reports a multi-platform build.
    `attestations`: each platform's predicates (as `results`), attached in the index."""
    outputs = list(outputs) or [OutputSpec("store", {})]
    check_outputs(outputs, load=False)
    all_names = _image_names(tags, None)
    indexes = _Indexes(store, results, compression, annotations, attestations, all_names)
    first = next((s for s in outputs if s.writes_manifest), None)
    index = (indexes.of(first) if first is not None
             else indexes.get(ImageOptions(), "the image", annotated=False))
    pushes = [(indexes.of(spec), tuple(_image_names(tags, spec)))
              for spec in _pushed_outputs(outputs, push)]
    for spec in outputs:
        image_names = _image_names(tags, spec)
        all_names += [n for n in image_names if n not in all_names]
        if spec.type in ("store", "image"):
            desc = indexes.of(spec)
            for name in image_names:
                store.tag(name, desc)
        elif spec.type == "oci":
            _write_file_output(spec, store, results[0], indexes, index, image_names,
                               progress)
        elif spec.type == "local":
            dest = Path(spec.attrs["dest"])
            for result in results:
                where = OutputSpec("local", {**spec.attrs,
                                             "dest": str(dest / result.config.platform.dirname)})
                _write_file_output(where, store, result, indexes, index, image_names)
        else:
            raise UsageError(f"--output type={spec.type}: not for a multi-platform build")
    return ExportReport(index, "", tuple(all_names), index.digest, tuple(pushes))
