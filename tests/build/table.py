"""Table-test plumbing: a row is a Dockerfile, its context and a check of the image."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.build import imagefs
from tests.build.conftest import Builder, give_to, write_context

Check = Callable[[imagefs.Image], None]


@dataclass(frozen=True)
class Row:
    id: str
    dockerfile: str
    check: Check
    files: dict[str, str | bytes] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # more build() arguments


def build_rows(builder: Builder, rows: Sequence[Row], name: str,
               prepare: Callable[[Row, Path], None] | None = None,
               ) -> Iterator[tuple[Row, imagefs.Image | str]]:
    """Build every row (one user process) into its own OCI layout; yields each row with
    its image, or the build's error message."""
    jobs = []
    (builder.tmp / name).mkdir(exist_ok=True)
    give_to(builder.tmp / name, builder.user)
    for row in rows:
        ctx = write_context(builder.tmp / name / row.id,
                            {"Dockerfile": row.dockerfile, **row.files}, builder.user)
        if prepare is not None:
            prepare(row, ctx)
        out = builder.tmp / name / f"{row.id}.oci"
        jobs.append({"context": str(ctx), "outputs": [f"type=oci,dest={out}"], **row.options})
    for row, job, result in zip(rows, jobs, builder.batch(jobs), strict=True):
        if "error" in result:
            yield row, result["error"]
        else:
            yield row, imagefs.load(Path(job["outputs"][0].split("dest=", 1)[1]),
                                    result["manifest"])


def text(image: imagefs.Image, path: str) -> str:
    entry = image.files.get(path)
    assert entry is not None, f"{path} is not in the image"
    assert entry.data is not None, f"{path} is not a regular file"
    return entry.data.decode()


def config(image: imagefs.Image) -> dict[str, Any]:
    return image.config.get("config") or {}


def env(image: imagefs.Image) -> dict[str, str]:
    return dict(item.split("=", 1) for item in config(image).get("Env") or ())
