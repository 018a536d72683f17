"""Where a store's parts are under its root, and which root is the default.

Import-light (os only): the rebuild memo reads a store before the engine is loaded.
"""

from __future__ import annotations

import os

ENV_ROOT = "OCIBUILD_ROOT"
CONTENT = "content"  # an OCI image layout: every blob; index.json names local images
INDEX = os.path.join(CONTENT, "index.json")
BLOBS = os.path.join(CONTENT, "blobs")
RECORDS_DB = "records.db"
SNAPSHOTS = "snapshots"
LAYERS = os.path.join(SNAPSHOTS, "layers")  # extracted layers, by diffID
CHAINS = os.path.join(SNAPSHOTS, "chains")  # native snapshots, by chain ID
STEPS = os.path.join(SNAPSHOTS, "steps")  # step directories of running builds
TRASH = os.path.join(SNAPSHOTS, "trash")  # finished steps' directories, deleted later
COPIES = os.path.join(SNAPSHOTS, "copies")  # where context directories were last copied
TMP = "tmp"  # temporary files of the processes using the store (ocibuild.cache.temporaries)
CACHE_MOUNTS = "cache-mounts"
LOCK = "store.lock"
REBUILDS = "rebuilds"  # rebuild memos (ocibuild.rebuild_memo)


def default_root() -> str:
    """$OCIBUILD_ROOT, else $XDG_DATA_HOME/ocibuild, else ~/.local/share/ocibuild."""
    if os.environ.get(ENV_ROOT):
        return os.environ[ENV_ROOT]
    xdg = os.environ.get("XDG_DATA_HOME")
    base = xdg if xdg else os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "ocibuild")


def blob_path(root: str, digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return os.path.join(root, BLOBS, algorithm, hexpart)
