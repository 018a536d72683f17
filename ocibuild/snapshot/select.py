"""Choosing a snapshotter: `--snapshotter native|overlay|auto`."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibuild.errors import UsageError

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.snapshot import Snapshotter

KINDS = ("auto", "overlay", "native")
_probe_cache: dict[str, bool] = {}


def probe_overlay_in_userns(args: dict[str, Any]) -> bool:
    """(Runs in a disposable helper process under the sandbox mapping.) Can this process
    mount overlayfs, with whiteouts and opaque directories, on the store's filesystem?"""
    from ocibuild.sandbox import linux

    base = Path(args["dir"])
    try:
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        for name in ("lower", "upper", "work", "merged"):
            (base / name).mkdir()
        (base / "lower" / "gone").mkdir()
        linux.mount("overlay", str(base / "merged"), "overlay", 0,
                    f"lowerdir={base / 'lower'},upperdir={base / 'upper'},"
                    f"workdir={base / 'work'},userxattr")
        try:
            os.rmdir(base / "merged" / "gone")  # EIO here without a working userxattr
        finally:
            linux.umount(str(base / "merged"))
    except OSError:
        return False
    return True


def overlay_works(store: Store) -> bool:
    key = str(store.snapshots_dir)
    if key not in _probe_cache:
        from ocibuild.sandbox import SandboxError, run_in_userns
        from ocibuild.snapshot.userns import remove_tree

        tmp = Path(tempfile.mkdtemp(prefix=".probe-", dir=store.snapshots_dir))
        try:
            _probe_cache[key] = bool(run_in_userns(
                "ocibuild.snapshot.select:probe_overlay_in_userns", {"dir": str(tmp)}))
        except SandboxError:
            _probe_cache[key] = False
        finally:
            try:
                remove_tree(tmp)
            except Exception:  # noqa: BLE001 (a probe leftover must not fail the build)
                shutil.rmtree(tmp, ignore_errors=True)
    return _probe_cache[key]


def open_snapshotter(store: Store, kind: str = "auto") -> Snapshotter:
    from ocibuild.snapshot.native import NativeSnapshotter
    from ocibuild.snapshot.overlay import OverlaySnapshotter

    if kind not in KINDS:
        raise UsageError(f"unknown snapshotter {kind!r} (use {', '.join(KINDS)})")
    if kind == "native":
        return NativeSnapshotter(store)
    if kind == "overlay":
        if not overlay_works(store):
            raise UsageError("--snapshotter overlay: overlayfs cannot be mounted here "
                             "(in a user namespace, with userxattr); use native or auto")
        return OverlaySnapshotter(store)
    return OverlaySnapshotter(store) if overlay_works(store) else NativeSnapshotter(store)
