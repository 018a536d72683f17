"""Content descriptors: media type, digest and size of a blob."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ocibuild.oci import digest as _digest
from ocibuild.oci.platform import Platform


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest, index or layout points at."""
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    artifact_type: str = ""

    def __post_init__(self) -> None:
        _digest.validate(self.digest)
        if self.size < 0:
            raise ValueError(f"negative size in descriptor {self.digest}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform is not None:
            d["platform"] = self.platform.to_dict()
        if self.urls:
            d["urls"] = list(self.urls)
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Descriptor:
        try:
            return cls(
                media_type=d.get("mediaType", ""),
                digest=d["digest"],
                size=int(d["size"]),
                annotations=dict(d.get("annotations") or {}),
                platform=Platform.from_dict(d["platform"]) if d.get("platform") else None,
                urls=tuple(d.get("urls") or ()),
                artifact_type=d.get("artifactType", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            from ocibuild.errors import OcibuildError

            raise OcibuildError(f"invalid descriptor {d!r}: {exc}") from None

    def with_annotations(self, **extra: str) -> Descriptor:
        merged = {**self.annotations, **extra}
        return Descriptor(self.media_type, self.digest, self.size, merged, self.platform,
                          self.urls, self.artifact_type)
