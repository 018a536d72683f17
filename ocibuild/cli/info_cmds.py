"""`ocibuild version` and `ocibuild info`: what this ocibuild is and what it can do here."""

from __future__ import annotations

import json
import os
import platform
import pwd
import sys
from pathlib import Path
from typing import Any

import click

from ocibuild import __version__


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"ocibuild": __version__, "python": platform.python_version(),
           "kernel": platform.release()}
    for dist in ("click", "isal", "zstandard"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


@click.command("version")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def version_cmd(fmt: str) -> None:
    """Show the version of ocibuild and of what it runs on."""
    versions = _versions()
    from ocibuild.oci.platform import host

    versions["platform"] = str(host())
    if fmt == "json":
        click.echo(json.dumps(versions, indent=2))
        return
    for key, value in versions.items():
        click.echo(f"{key + ':':<11}{value}")


def _dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _isolation() -> dict[str, Any]:
    from ocibuild.errors import OcibuildError
    from ocibuild.sandbox import availability

    modes: dict[str, Any] = {}
    for mode in ("userns", "chroot"):
        try:
            availability.choose(mode)
            modes[mode] = {"available": True}
        except OcibuildError as exc:
            modes[mode] = {"available": False, "why": exc.message}
    try:
        choice = availability.choose("auto")
        modes["auto"] = {"uses": choice.isolation, "why": choice.notice
                         or "user namespaces work here"}
    except OcibuildError as exc:
        modes["auto"] = {"uses": None, "why": exc.message}
    return modes


def _snapshotter(store: Any, can_mount: bool) -> dict[str, str]:
    from ocibuild.snapshot import select

    if not can_mount:
        return {"uses": "native", "why": "steps cannot mount here (a bare chroot)"}
    if select.overlay_works(store):
        return {"uses": "overlay", "why": "overlayfs with userxattr mounts in a user "
                                          "namespace on the store's filesystem"}
    return {"uses": "native", "why": "overlayfs cannot be mounted in a user namespace on "
                                     "the store's filesystem (probed; remembered in the store)"}


def _subids() -> dict[str, Any]:
    from ocibuild.sandbox.idmapping import subordinate_ranges

    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    out: dict[str, Any] = {"user": name}
    for kind in ("subuid", "subgid"):
        ranges = subordinate_ranges(Path(f"/etc/{kind}"), name, uid)
        out[kind] = [f"{start}:{count}" for start, count in ranges]
    return out


def gather(root: str | None) -> dict[str, Any]:
    """Everything `ocibuild info` shows, as a dict (its --format json)."""
    import shutil

    from ocibuild.cache.store import Store
    from ocibuild.sandbox import usernet

    store = Store.open(root)
    isolation = _isolation()
    auto = isolation["auto"].get("uses")
    can_mount = auto == "userns" or (auto == "chroot" and _chroot_has_namespaces())
    slirp = usernet.find_helper()
    why_not = usernet.unavailable_reason()
    return {
        "store": {"path": str(store.root), "size": _dir_size(store.root),
                  "images": len(store.images())},
        "snapshotter": _snapshotter(store, can_mount) if auto else
        {"uses": "none", "why": "no isolation mode works here"},
        "isolation": isolation,
        "idmap": _subids(),
        "newuidmap": shutil.which("newuidmap") or "",
        "network": {"helper": slirp or "", "usable": why_not is None,
                    "why": why_not or "slirp4netns gives each RUN step its own network"},
        "platforms": _platforms(),
        "versions": _versions(),
    }


def _platforms() -> list[dict[str, str]]:
    """The platforms whose RUN steps can run here: natively or by a binfmt_misc handler."""
    from ocibuild.sandbox.binfmt import runnable_platforms

    return [{"platform": str(p), "runs": how} for p, how in runnable_platforms()]


def _chroot_has_namespaces() -> bool:
    from ocibuild.sandbox import availability

    return availability.probe().namespaces


@click.command("info")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.pass_context
def info_cmd(ctx: click.Context, fmt: str) -> None:
    """Show the store, the snapshotter and isolation this host allows, and why, and the
    platforms whose RUN steps it can run."""
    from ocibuild.cache.units import human_size

    info = gather(ctx.obj.get("root") if ctx.obj else None)
    if fmt == "json":
        click.echo(json.dumps(info, indent=2))
        return
    lines = [f"store:        {info['store']['path']} ({human_size(info['store']['size'])}, "
             f"{info['store']['images']} image names)",
             f"snapshotter:  {info['snapshotter']['uses']} ({info['snapshotter']['why']})"]
    iso = info["isolation"]
    lines.append(f"isolation:    auto uses {iso['auto']['uses'] or 'nothing'} "
                 f"({iso['auto']['why']})")
    for mode in ("userns", "chroot"):
        lines.append(f"  {mode + ':':<12}" + ("available" if iso[mode]["available"]
                                              else f"unavailable: {iso[mode]['why']}"))
    ids = info["idmap"]
    for kind in ("subuid", "subgid"):
        lines.append(f"{kind + ':':<14}{ids['user']}: "
                     + (", ".join(ids[kind]) or f"none (only {ids['user']} maps to root in "
                                                "the user namespace)"))
    net = info["network"]
    lines.append(f"network:      {net['helper'] or 'no slirp4netns'} "
                 + ("(usable)" if net["usable"] else f"(unusable: {net['why']})"))
    lines.append("platforms:    " + ", ".join(
        p["platform"] + ("" if p["runs"] == "native" else f" ({p['runs']})")
        for p in info["platforms"]))
    lines.append("versions:     " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    click.echo("\n".join(lines))
    sys.stdout.flush()
