"""Outputs of a build: the local store (default), an OCI layout dir or tar, a
docker-archive tar, a local directory; plus --iidfile and --metadata-file.

Every output is written to a temporary name and renamed into place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.cache import names
from ocibuild.errors import UsageError
from ocibuild.exporter.metadata import write_iidfile, write_metadata_file
from ocibuild.exporter.spec import OUTPUT_TYPES, OutputSpec, parse_output
from ocibuild.oci.config import ImageConfig
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.image import write_image
from ocibuild.snapshot import LayerRef

if TYPE_CHECKING:
    from ocibuild.cache.store import Store


@dataclass(frozen=True)
class BuildResult:
    """The image a build made: its config and every layer, base first."""

    config: ImageConfig
    layers: tuple[LayerRef, ...]  # all blobs are in store.layout


@dataclass(frozen=True)
class ExportReport:
    """What the outputs were written from: the manifest, its config, names, ID."""

    manifest: Descriptor  # the image manifest (in store.layout)
    config_digest: str
    names: tuple[str, ...]  # full normalized names given with -t / name=
    image_id: str  # what --iidfile writes

    @property
    def manifest_digest(self) -> str:
        return self.manifest.digest


def _image_names(tags: Sequence[str], spec: OutputSpec | None) -> list[str]:
    found = [names.normalize_name(t) for t in tags]
    if spec is not None and spec.attrs.get("name"):
        found += [names.normalize_name(n) for n in spec.attrs["name"].split(",") if n.strip()]
    return list(dict.fromkeys(found))


def push_targets(outputs: Sequence[OutputSpec], tags: Sequence[str], push: bool
                 ) -> list[str]:
    """The full names a build pushes: its tags with `--push`, and the names of each
    `type=image,push=true` output (its name=, else the tags). Checked before the build
    runs, so a push without a name fails at once."""
    found: list[str] = []
    if push:
        if not tags:
            raise UsageError("--push needs a name to push to: add -t REGISTRY/REPO:TAG")
        found += _image_names(tags, None)
    for spec in outputs:
        if spec.type in ("store", "image") and _wants_push(spec):
            image_names = _image_names(tags, spec)
            if not image_names:
                raise UsageError("-o type=image,push=true needs name=REF (or -t REF)")
            found += image_names
    return list(dict.fromkeys(found))


def _wants_push(spec: OutputSpec) -> bool:
    return spec.attrs.get("push", "false").lower() in ("true", "1")


def export(result: BuildResult, outputs: Sequence[OutputSpec], store: Store, *,
           tags: Sequence[str] = ()) -> ExportReport:
    """Write the image of `result` to every output (the local store when none is given)."""
    outputs = list(outputs) or [OutputSpec("store", {})]
    all_names = _image_names(tags, None)
    manifest = write_image(store.layout, result.config, [r.descriptor for r in result.layers])
    config_digest = result.config.digest
    to_store = False
    for spec in outputs:
        image_names = _image_names(tags, spec)
        all_names += [n for n in image_names if n not in all_names]
        if spec.type in ("store", "image"):
            for name in image_names:
                store.tag(name, manifest)
            to_store = True
        elif spec.type == "oci":
            from ocibuild.exporter.oci import export_oci

            export_oci(store.layout, manifest, Path(spec.attrs["dest"]), spec.attrs,
                       image_names)
        elif spec.type == "docker":
            from ocibuild.exporter.docker_archive import export_docker_archive

            export_docker_archive(store.layout, manifest.digest, Path(spec.attrs["dest"]),
                                  image_names)
            to_store = True  # loaded into a daemon, its ID is the config digest
        elif spec.type == "local":
            from ocibuild.exporter.local import export_local

            export_local(store.layout, result.layers, Path(spec.attrs["dest"]))
        else:  # parse_output rejects others; a hand-made OutputSpec may not
            raise UsageError(f"unknown output type {spec.type!r}; use one of {OUTPUT_TYPES}")
    return ExportReport(manifest, config_digest, tuple(all_names),
                        config_digest if to_store else manifest.digest)


__all__ = ["BuildResult", "ExportReport", "OutputSpec", "export", "parse_output",
           "push_targets", "write_iidfile", "write_metadata_file"]
