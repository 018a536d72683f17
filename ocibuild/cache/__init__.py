"""The local store and build cache: content, cache records, image names, cache mounts.

The names below load with their modules on first use: a process that needs only a
part of the package (the file-op server's starter wants `temporaries`, ~2 ms) does not
pay for the store and the records (~20 ms of imports)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocibuild.cache.names import familiar_name, normalize_name
    from ocibuild.cache.records import CacheRecord
    from ocibuild.cache.store import Store, StoreBusyError, default_root

_EXPORTS = {"CacheRecord": "records", "Store": "store", "StoreBusyError": "store",
            "default_root": "store", "familiar_name": "names", "normalize_name": "names"}
__all__ = ["CacheRecord", "Store", "StoreBusyError", "default_root", "familiar_name",
           "normalize_name"]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ocibuild.cache' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"ocibuild.cache.{module}"), name)
    globals()[name] = value
    return value
