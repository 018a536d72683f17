"""`--metadata-file` (the JSON buildx writes) and `--iidfile`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibuild.atomic import TMP_PREFIX, atomic_write_bytes
from ocibuild.errors import os_error

if TYPE_CHECKING:
    from ocibuild.exporter.results import ExportReport


def metadata(report: ExportReport) -> dict[str, Any]:
    held = report.attested or report.manifest  # the index, when there is one
    data: dict[str, Any] = {
        "containerimage.config.digest": report.config_digest,
        "containerimage.descriptor": held.to_dict(),
        "containerimage.digest": held.digest,
    }
    if not report.config_digest:  # an image index (a multi-platform build) has no config
        del data["containerimage.config.digest"]
    if report.names:
        data["image.name"] = ",".join(report.names)
    return data


def write_metadata_file(path: Path, report: ExportReport,
                        extra: dict[str, Any] | None = None) -> None:
    """Write buildx's metadata JSON (plus `extra` keys, e.g. buildx.build.ref) atomically."""
    data = {**metadata(report), **(extra or {})}
    _write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(),
           "--metadata-file")


def write_iidfile(path: Path, report: ExportReport) -> None:
    """Write the image ID: the config digest, as `docker build --iidfile` does for an image
    in the local store (or a docker archive); the manifest digest for other outputs."""
    _write(path, report.image_id.encode(), "--iidfile")


def _write(path: Path, data: bytes, option: str) -> None:
    """Write `data` to `path` atomically; a place it cannot write is one message."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except OSError as exc:
        name = exc.filename2 if exc.filename2 is not None else exc.filename
        where = path if name is None or Path(os.fsdecode(name)).name.startswith(TMP_PREFIX) \
            else Path(os.fsdecode(name))
        raise os_error(exc, f"{option}: cannot write", where) from exc
