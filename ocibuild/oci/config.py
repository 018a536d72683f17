"""The image configuration (what `docker inspect` calls Config, plus rootfs and history)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

from ocibuild.errors import OcibuildError
from ocibuild.oci import canonical
from ocibuild.oci import digest as _digest
from ocibuild.oci.platform import Platform


@dataclass(frozen=True)
class History:
    """One entry of an image config's history."""
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.created:
            d["created"] = self.created
        if self.created_by:
            d["created_by"] = self.created_by
        if self.author:
            d["author"] = self.author
        if self.comment:
            d["comment"] = self.comment
        if self.empty_layer:
            d["empty_layer"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        return cls(
            created=d.get("created", ""),
            created_by=d.get("created_by", ""),
            author=d.get("author", ""),
            comment=d.get("comment", ""),
            empty_layer=bool(d.get("empty_layer", False)),
        )


@dataclass(frozen=True)
class ImageConfig:
    """An OCI image config. `config` holds the execution parameters with the spec's
    capitalized keys (User, Env, Entrypoint, Cmd, WorkingDir, Labels, ...)."""

    architecture: str
    os: str
    variant: str = ""
    created: str = ""
    author: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    diff_ids: tuple[str, ...] = ()
    history: tuple[History, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # unknown top-level keys, kept

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.extra)
        d["architecture"] = self.architecture
        d["os"] = self.os
        if self.variant:
            d["variant"] = self.variant
        if self.created:
            d["created"] = self.created
        if self.author:
            d["author"] = self.author
        if self.config:
            d["config"] = copy.deepcopy(self.config)
        d["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        if self.history:
            d["history"] = [h.to_dict() for h in self.history]
        return d

    def to_bytes(self) -> bytes:
        return canonical.dumps(self.to_dict())

    @property
    def digest(self) -> str:
        return _digest.of_bytes(self.to_bytes())

    def with_layer(self, diff_id: str, history: History) -> ImageConfig:
        return replace(self, diff_ids=(*self.diff_ids, diff_id), history=(*self.history, history))

    def with_history(self, history: History) -> ImageConfig:
        return replace(self, history=(*self.history, history))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageConfig:
        if not isinstance(d, dict):
            raise OcibuildError("image config is not a JSON object")
        rootfs = d.get("rootfs") or {}
        known = {"architecture", "os", "variant", "created", "author", "config", "rootfs",
                 "history"}
        return cls(
            architecture=d.get("architecture", ""),
            os=d.get("os", ""),
            variant=d.get("variant", ""),
            created=d.get("created", ""),
            author=d.get("author", ""),
            config=dict(d.get("config") or {}),
            diff_ids=tuple(rootfs.get("diff_ids") or ()),
            history=tuple(History.from_dict(h) for h in d.get("history") or ()),
            extra={k: v for k, v in d.items() if k not in known},
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageConfig:
        return cls.from_dict(canonical.loads(data, "image config"))
