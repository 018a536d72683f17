"""`--metadata-file` (the JSON buildx writes) and `--iidfile`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibuild.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from ocibuild.exporter import ExportReport


def metadata(report: ExportReport) -> dict[str, Any]:
    data: dict[str, Any] = {
        "containerimage.config.digest": report.config_digest,
        "containerimage.descriptor": report.manifest.to_dict(),
        "containerimage.digest": report.manifest_digest,
    }
    if report.names:
        data["image.name"] = ",".join(report.names)
    return data


def write_metadata_file(path: Path, report: ExportReport,
                        extra: dict[str, Any] | None = None) -> None:
    """Write buildx's metadata JSON (plus `extra` keys, e.g. buildx.build.ref) atomically."""
    data = {**metadata(report), **(extra or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def write_iidfile(path: Path, report: ExportReport) -> None:
    """Write the image ID: the config digest, as `docker build --iidfile` does for an image
    in the local store (or a docker archive); the manifest digest for other outputs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, report.image_id.encode())
