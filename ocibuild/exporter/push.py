"""The push output: each image an output marks push=true (or `--push`) goes to the
registry under its names, after the other outputs are written. The pushes to make are
in the `ExportReport` (see `exporter._pushed_outputs`); their bytes are shown under the
"exporting to image" step."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.exporter.results import ExportReport
    from ocibuild.progress.transfer import StepProgress
    from ocibuild.registry.options import RegistryOptions


def push_images(report: ExportReport, store: Store, registry: RegistryOptions | None,
                progress: StepProgress | None) -> tuple[str, ...]:
    """Push every image of `report.pushes` from the store; return `name@digest` of each
    reference pushed. Raises a `RegistryError` when a registry refuses."""
    if not report.pushes:
        return ()
    from ocibuild.registry import push_names

    return tuple(ref for image, image_names in report.pushes
                 for ref in push_names(store.layout, image, image_names, options=registry,
                                       store=store, progress=progress).references)
