"""Image manifests and image indexes (OCI, read from Docker schema 2 too)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ocibuild.errors import OcibuildError
from ocibuild.oci import canonical, mediatypes
from ocibuild.oci import digest as _digest
from ocibuild.oci.descriptor import Descriptor


@dataclass(frozen=True)
class Manifest:
    """An OCI image manifest (or Docker schema 2 one): the config and the layers."""
    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = mediatypes.OCI_MANIFEST
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str = ""
    subject: Descriptor | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
        }
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        if self.subject is not None:
            d["subject"] = self.subject.to_dict()
        return d

    def to_bytes(self) -> bytes:
        return canonical.dumps(self.to_dict())

    @property
    def digest(self) -> str:
        return _digest.of_bytes(self.to_bytes())

    def descriptor(self, **kwargs: Any) -> Descriptor:
        data = self.to_bytes()
        return Descriptor(self.media_type, _digest.of_bytes(data), len(data), **kwargs)

    @classmethod
    def from_dict(cls, d: dict[str, Any], media_type: str = "") -> Manifest:
        mt = d.get("mediaType") or media_type or mediatypes.OCI_MANIFEST
        if mt not in mediatypes.MANIFEST_TYPES:
            raise OcibuildError(f"not an image manifest: media type {mt!r}")
        if d.get("schemaVersion") != 2:
            raise OcibuildError(f"unsupported manifest schemaVersion {d.get('schemaVersion')!r}")
        if "config" not in d:
            raise OcibuildError("image manifest has no config")
        return cls(
            config=Descriptor.from_dict(d["config"]),
            layers=tuple(Descriptor.from_dict(x) for x in d.get("layers") or ()),
            media_type=mt,
            annotations=dict(d.get("annotations") or {}),
            artifact_type=d.get("artifactType", ""),
            subject=Descriptor.from_dict(d["subject"]) if d.get("subject") else None,
        )

    @classmethod
    def from_bytes(cls, data: bytes, media_type: str = "") -> Manifest:
        return cls.from_dict(canonical.loads(data, "image manifest"), media_type)


@dataclass(frozen=True)
class Index:
    """An OCI image index (or Docker manifest list): one manifest per platform."""
    manifests: tuple[Descriptor, ...]
    media_type: str = mediatypes.OCI_INDEX
    annotations: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "manifests": [m.to_dict() for m in self.manifests],
        }
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d

    def to_bytes(self) -> bytes:
        return canonical.dumps(self.to_dict())

    def descriptor(self, **kwargs: Any) -> Descriptor:
        data = self.to_bytes()
        return Descriptor(self.media_type, _digest.of_bytes(data), len(data), **kwargs)

    @classmethod
    def from_dict(cls, d: dict[str, Any], media_type: str = "") -> Index:
        mt = d.get("mediaType") or media_type or mediatypes.OCI_INDEX
        if mt not in mediatypes.INDEX_TYPES:
            raise OcibuildError(f"not an image index: media type {mt!r}")
        return cls(
            manifests=tuple(Descriptor.from_dict(x) for x in d.get("manifests") or ()),
            media_type=mt,
            annotations=dict(d.get("annotations") or {}),
        )

    @classmethod
    def from_bytes(cls, data: bytes, media_type: str = "") -> Index:
        return cls.from_dict(canonical.loads(data, "image index"), media_type)


def parse_manifest_or_index(data: bytes, media_type: str = "") -> Manifest | Index:
    """Parse a manifest or an index, telling them apart by mediaType or shape."""
    d = canonical.loads(data, "manifest")
    if not isinstance(d, dict):
        raise OcibuildError("manifest is not a JSON object")
    mt = d.get("mediaType") or media_type
    if mt in mediatypes.INDEX_TYPES or (not mt and "manifests" in d):
        return Index.from_dict(d, mt)
    return Manifest.from_dict(d, mt)
