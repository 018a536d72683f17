"""Moved to ocibuild.deferred (the engine uses it too); kept for the frontend's imports."""

from ocibuild.deferred import deferred_dataclass, materialize

__all__ = ["deferred_dataclass", "materialize"]
