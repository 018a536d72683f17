"""User and group ID mappings between a user namespace and the host."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class IdRange:
    """One line of a uid or gid map: `length` ids from `container` inside, `host` outside."""
    container: int
    host: int
    length: int


@dataclass(frozen=True)
class IdMap:
    """The uid and gid ranges of a user namespace (as in /proc/PID/uid_map).

    An empty map is the identity: ids are the same inside and outside.
    """

    uids: tuple[IdRange, ...] = field(default_factory=tuple)
    gids: tuple[IdRange, ...] = field(default_factory=tuple)

    @property
    def is_identity(self) -> bool:
        return not self.uids and not self.gids

    def uid_to_container(self, host_uid: int) -> int | None:
        return _to_container(self.uids, host_uid)

    def gid_to_container(self, host_gid: int) -> int | None:
        return _to_container(self.gids, host_gid)

    def uid_to_host(self, uid: int) -> int | None:
        return _to_host(self.uids, uid)

    def gid_to_host(self, gid: int) -> int | None:
        return _to_host(self.gids, gid)

    def uid_map_lines(self) -> str:
        return "".join(f"{r.container} {r.host} {r.length}\n" for r in self.uids)

    def gid_map_lines(self) -> str:
        return "".join(f"{r.container} {r.host} {r.length}\n" for r in self.gids)


def _to_container(ranges: tuple[IdRange, ...], host_id: int) -> int | None:
    if not ranges:
        return host_id
    for r in ranges:
        if r.host <= host_id < r.host + r.length:
            return r.container + host_id - r.host
    return None


def _to_host(ranges: tuple[IdRange, ...], cid: int) -> int | None:
    if not ranges:
        return cid
    for r in ranges:
        if r.container <= cid < r.container + r.length:
            return r.host + cid - r.container
    return None
