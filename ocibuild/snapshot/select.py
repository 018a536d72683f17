"""Choosing a snapshotter: `--snapshotter native|overlay|auto`."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.atomic import new_dir, remove_tree
from ocibuild.errors import UsageError
from ocibuild.idspace.requests import Request, handler, request_type

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.snapshot.native import NativeSnapshotter
    from ocibuild.snapshot.overlay import OverlaySnapshotter

KINDS = ("auto", "overlay", "native")
_probe_cache: dict[str, bool] = {}
_probe_locks: dict[str, threading.Lock] = {}
_probe_locks_guard = threading.Lock()


@request_type
class ProbeOverlay(Request[bool | None]):
    """Mount an overlay in directory `dir` (removed afterwards) to see if it works."""

    dir: str


@handler(ProbeOverlay)
def probe_overlay_in_userns(args: ProbeOverlay) -> bool | None:
    """(Runs in a process of its own under the sandbox mapping.) Can this process mount
    overlayfs, with whiteouts and opaque directories, on the store's filesystem? None
    when it cannot have a mount namespace at all: that says nothing about the store's
    filesystem, so it is not remembered. The probe directory is removed here, where its
    owners are mapped."""
    from ocibuild.idspace.userns import remove_local
    from ocibuild.sandbox import linux

    base = Path(args.dir)
    try:
        try:
            linux.unshare(linux.CLONE_NEWNS)
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        except OSError:
            return None
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
    finally:
        remove_local(base)
    return True


def _probe_file(store: Store) -> Path:
    return store.snapshots_dir / "overlay-probe.json"


def probe_known(store: Store) -> bool:
    """Whether overlay_works() can answer without a probe."""
    return str(store.snapshots_dir) in _probe_cache or _probe_file(store).is_file()


def overlay_works(store: Store) -> bool:
    """The probe's answer, remembered in the store for this kernel (a probe costs a
    helper process; most builds need none)."""
    key = str(store.snapshots_dir)
    if key in _probe_cache:
        return _probe_cache[key]
    with _probe_locks_guard:
        lock = _probe_locks.setdefault(key, threading.Lock())
    with lock:  # one probe per store; a second caller waits for its answer
        if key not in _probe_cache:
            works = _probe(store)
            if works is None:
                return False  # the probe could not run: no answer to remember
            _probe_cache[key] = works
    return _probe_cache[key]


def _probe(store: Store) -> bool | None:
    kernel = os.uname().release
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        saved = json.loads(_probe_file(store).read_text())
        if saved["kernel"] == kernel:
            return bool(saved["overlay"])
    from ocibuild.idspace.userns import UsernsCallError, request_isolated

    tmp = new_dir(store.snapshots_dir, ".probe-")
    try:
        answer = request_isolated(ProbeOverlay(str(tmp)))
    except UsernsCallError:
        return None  # no user namespace, or the build ended: the native snapshotter
    finally:
        remove_tree(tmp)  # left only if the probe could not start
    if answer is None:
        return None  # no mount namespace here (a container's seccomp filter)
    works = bool(answer)
    record = _probe_file(store).with_name(f".tmp-{os.getpid()}-overlay-probe.json")
    with contextlib.suppress(OSError):
        record.write_text(json.dumps({"kernel": kernel, "overlay": works}))
        os.replace(record, _probe_file(store))
    return works


def open_snapshotter(store: Store, kind: str = "auto", *,
                     can_mount: bool = True) -> OverlaySnapshotter | NativeSnapshotter:
    """`can_mount` False: steps cannot mount (a bare chroot), so auto is native."""
    from ocibuild.snapshot.overlay import OverlaySnapshotter

    if kind not in KINDS:
        raise UsageError(f"unknown snapshotter {kind!r} (use {', '.join(KINDS)})")
    if kind == "overlay" and not can_mount:
        raise UsageError("--snapshotter overlay: steps cannot mount here (namespaces are "
                         "refused, so RUN steps run in a bare chroot); use native or auto")
    if not can_mount:
        kind = "native"
    if kind == "native" or (kind == "auto" and not overlay_works(store)):
        from ocibuild.snapshot.native import NativeSnapshotter

        return NativeSnapshotter(store)
    if kind == "overlay":
        if not overlay_works(store):
            raise UsageError("--snapshotter overlay: overlayfs cannot be mounted here "
                             "(in a user namespace, with userxattr); use native or auto")
        return OverlaySnapshotter(store)
    return OverlaySnapshotter(store)
