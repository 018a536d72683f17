"""USER resolution against a root filesystem's /etc/passwd and /etc/group.

Follows Docker/runc: a name must exist in /etc/passwd; a number need not (its group
is then 0); "user:group" takes the group from /etc/group (a name must exist there);
supplementary groups come from /etc/group membership unless a group was given.
Imported by the sandbox helper, so it imports nothing.
"""

from __future__ import annotations


class UnknownUserError(Exception):
    pass


class ExecUser:
    __slots__ = ("uid", "gid", "groups", "home")

    def __init__(self, uid: int, gid: int, groups: list[int], home: str) -> None:
        self.uid, self.gid, self.groups, self.home = uid, gid, groups, home

    def __repr__(self) -> str:
        return f"ExecUser(uid={self.uid}, gid={self.gid}, groups={self.groups})"


def _entries(text: str, fields: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= fields:
            rows.append(parts)
    return rows


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def resolve_user(spec: str, passwd: str, group: str) -> ExecUser:
    """Resolve a USER value given the text of /etc/passwd and /etc/group ("" if absent)."""
    user_part, _, group_part = (spec or "0").partition(":")
    users = _entries(passwd, 7)
    groups = _entries(group, 4)
    uid_number = _number(user_part)
    match = next((u for u in users if (u[0] == user_part if uid_number is None
                                       else _number(u[2]) == uid_number)), None)
    if match is None and uid_number is None:
        raise UnknownUserError(
            f"unable to find user {user_part}: no matching entries in the root "
            "filesystem's /etc/passwd")
    uid = uid_number if uid_number is not None else int(match[2])  # type: ignore[index]
    gid = int(match[3]) if match is not None and match[3].isdigit() else 0
    home = match[5] if match is not None and match[5] else "/"
    supplementary: list[int] = []
    if group_part:
        gid_number = _number(group_part)
        if gid_number is None:
            found = next((g for g in groups if g[0] == group_part), None)
            if found is None:
                raise UnknownUserError(
                    f"unable to find group {group_part}: no matching entries in the root "
                    "filesystem's /etc/group")
            gid_number = int(found[2])
        gid = gid_number
    elif match is not None:
        name = match[0]
        supplementary = [int(g[2]) for g in groups
                         if g[2].isdigit() and name in g[3].strip().split(",")]
    all_groups = [gid] + [g for g in supplementary if g != gid]
    return ExecUser(uid, gid, all_groups, home)
