"""Which ids a sandbox's user namespace maps, and writing that mapping for a process.

- real root: the whole id range, identity (files keep their host ids);
- a user with /etc/subuid and /etc/subgid ranges and Debian's newuidmap/newgidmap:
  the caller to 0 and the subordinate ranges to 1..N;
- anyone else: the caller alone to 0 (the helper writes that map itself).
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ocibuild.errors import OcibuildError
from ocibuild.idmap import IdMap, IdRange

FULL_RANGE = 4294967295
MappingKind = Literal["root", "subids", "single"]


@dataclass(frozen=True)
class MappingPlan:
    """How a user namespace's ids are mapped: its kind, the uid and gid map, and its user."""
    kind: MappingKind
    idmap: IdMap
    user: str

    @property
    def single(self) -> bool:
        return self.kind == "single"

    def single_mapping_hint(self) -> str:
        return (f"only uid/gid 0 exist in this sandbox because user {self.user!r} has no "
                "range in /etc/subuid and /etc/subgid, so chown or setuid to any other id "
                "fails (EINVAL); add e.g. "
                f"'{self.user}:100000:65536' to both files (and install uidmap)")


def subordinate_ranges(path: Path, name: str, uid: int) -> list[tuple[int, int]]:
    """The (start, count) ranges /etc/subuid or /etc/subgid gives to `name` or `uid`."""
    try:
        text = path.read_text()
    except OSError:
        return []
    ranges = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (name, str(uid)):
            continue
        if parts[1].isdigit() and parts[2].isdigit() and int(parts[2]) > 0:
            ranges.append((int(parts[1]), int(parts[2])))
    return ranges


def _ranges(own: int, subs: list[tuple[int, int]]) -> tuple[IdRange, ...]:
    out = [IdRange(0, own, 1)]
    next_id = 1
    for start, count in subs:
        out.append(IdRange(next_id, start, count))
        next_id += count
    return tuple(out)


def _own_ids(kind: str) -> tuple[IdRange, ...]:
    """The ids this process's user namespace has, each mapped to itself: every id in the
    host's, fewer for root of a rootless container (mapping others fails there)."""
    ranges = []
    try:
        text = Path(f"/proc/self/{kind}_map").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and all(f.isdigit() for f in fields):
            ranges.append(IdRange(int(fields[0]), int(fields[0]), int(fields[2])))
    return tuple(ranges) or (IdRange(0, 0, FULL_RANGE),)


def plan_mapping(etc: Path = Path("/etc")) -> MappingPlan:
    uid, gid = os.geteuid(), os.getegid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    if uid == 0:
        return MappingPlan("root", IdMap(_own_ids("uid"), _own_ids("gid")), name)
    subuids = subordinate_ranges(etc / "subuid", name, uid)
    subgids = subordinate_ranges(etc / "subgid", name, uid)
    helpers = _on_path("newuidmap") and _on_path("newgidmap")
    if subuids and subgids and helpers:
        return MappingPlan("subids", IdMap(_ranges(uid, subuids), _ranges(gid, subgids)), name)
    return MappingPlan("single", IdMap((IdRange(0, uid, 1),), (IdRange(0, gid, 1),)), name)


def _on_path(tool: str) -> bool:
    """Whether `tool` is an executable file in a directory of PATH (shutil.which's
    answer, without importing shutil: ~1.5 ms of every build)."""
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(directory or ".", tool)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return True
    return False


def current_idmap() -> IdMap:
    """The id mapping of the user namespace a sandbox started by this process gets."""
    return plan_mapping().idmap


def _triples(ranges: tuple[IdRange, ...]) -> list[str]:
    return [str(n) for r in ranges for n in (r.container, r.host, r.length)]


def apply_mapping(plan: MappingPlan, pid: int) -> None:
    """Write the uid and gid maps of `pid`, which has just unshared its user namespace."""
    if plan.kind == "root":
        Path(f"/proc/{pid}/uid_map").write_text(plan.idmap.uid_map_lines())
        Path(f"/proc/{pid}/gid_map").write_text(plan.idmap.gid_map_lines())
        return
    if plan.kind != "subids":
        raise OcibuildError("internal: the single-id mapping is written by the helper")
    import subprocess  # here: a rootless build's maps are written by its early starter

    for tool, ranges in (("newuidmap", plan.idmap.uids), ("newgidmap", plan.idmap.gids)):
        done = subprocess.run([tool, str(pid), *_triples(ranges)], capture_output=True,
                              text=True, env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
        if done.returncode != 0:
            raise OcibuildError(
                f"{tool} failed for user {plan.user!r}: {done.stderr.strip()} (check "
                f"/etc/sub{'u' if tool == 'newuidmap' else 'g'}id and that {tool} is setuid)")
