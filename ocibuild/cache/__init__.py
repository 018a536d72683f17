"""The local store and build cache: content, cache records, image names, cache mounts."""

from ocibuild.cache.names import familiar_name, normalize_name
from ocibuild.cache.records import CacheRecord
from ocibuild.cache.store import Store, StoreBusyError, default_root

__all__ = ["CacheRecord", "Store", "StoreBusyError", "default_root", "familiar_name",
           "normalize_name"]
