"""What a build hands the exporters (`BuildResult`) and what they report (`ExportReport`).

Its own module so that the exporters' modules name these types without importing the
package that dispatches to them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ocibuild.oci.config import ImageConfig
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.layerref import LayerRef


@dataclass(frozen=True)
class BuildResult:
    """The image a build made: its config and every layer, base first."""

    config: ImageConfig
    layers: tuple[LayerRef, ...]  # all blobs are in store.layout
    base_layers: int = 0  # how many of `layers` (the first ones) are the base image's


@dataclass(frozen=True)
class ExportReport:
    """What the outputs were written from: the manifest, its config, names, ID."""

    manifest: Descriptor  # the image manifest (in store.layout)
    config_digest: str
    names: tuple[str, ...]  # full normalized names given with -t / name=
    image_id: str  # what --iidfile writes
    # what to push: each image (in store.layout) with the full names it goes to
    pushes: tuple[tuple[Descriptor, tuple[str, ...]], ...] = ()
    # with attestations: the index of the image and its attestation manifest
    attested: Descriptor | None = None

    @property
    def manifest_digest(self) -> str:
        return self.manifest.digest
