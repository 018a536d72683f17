"""Where a store's parts are under its root, and which root is the default.

Import-light (os only): the rebuild memo reads a store before the engine is loaded.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs the rebuild memo's path ~5 ms
if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

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
LAZY = os.path.join(SNAPSHOTS, "lazy")  # layer blobs not written yet: how to make them
STEP_LAYER = "layer"  # in a step directory whose upper became a layer's: that name
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


def lazy_blob_path(root: str, digest: str) -> str:
    """Where the store says how to make a layer blob it has not written (cache.lazy_blobs)."""
    return os.path.join(root, LAZY, digest.partition(":")[2] + ".json")


def build_command(argv: Sequence[str],
                  flags: Collection[str] = ()) -> tuple[str | None, int] | None:
    """For `ocibuild ARGV` when it is a build command: the --root it names (None: the
    default) and the index of `build` in ARGV; None for any other command, or one with a
    global option other than --root and `flags`."""
    root: str | None = None
    i = 0
    while i < len(argv) and argv[i] != "build":
        if argv[i] == "--root" and i + 1 < len(argv):
            root, i = argv[i + 1], i + 2
        elif argv[i].startswith("--root="):
            root, i = argv[i].partition("=")[2], i + 1
        elif argv[i] in flags:
            i += 1
        else:
            return None
    return None if i == len(argv) else (root, i)
