"""A layer as the snapshotters, the solver and the exporters pass it around.

It lives in `oci/` (the bottom layer) so that exporters and the cache can name a layer
without importing the snapshot package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from ocibuild.oci.descriptor import Descriptor

if TYPE_CHECKING:
    from ocibuild.oci.layout import ImageLayout


class Layer(Protocol):
    """A layer wherever it is -- in the store, still being written by a step, or only in
    a --cache-from cache -- as go-containerregistry's v1.Layer: whoever holds one asks
    for what it needs and never which kind it holds."""

    ready: bool  # False while a step still writes it (written() would wait)

    def written(self) -> LayerRef | None:
        """Its blob's descriptor and its diffID, waiting while it is written (None: a
        step that changed no file)."""
        ...

    def ensure_local(self, layout: ImageLayout) -> None:
        """Its blob in `layout` (the store), fetched from where it is when elsewhere."""
        ...


@dataclass(frozen=True)
class LayerRef:
    """A layer as the snapshotter and the exporters need it: its blob and its diffID.
    As a Layer: one whose blob is in the store."""

    descriptor: Descriptor  # blob in store.layout
    diff_id: str
    ready: ClassVar[bool] = True

    def written(self) -> LayerRef:
        return self

    def ensure_local(self, layout: ImageLayout) -> None:
        """Nothing to do: its blob is in the store."""
