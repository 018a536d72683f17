"""The owner a file op gives what it makes for a "user[:group]" value, as BuildKit's
file ops read it (solver/llbsolver/ops/user_linux.go, readUser): unlike a process's
USER, a name that /etc/passwd (or /etc/group) lacks is no error, its id stays 0; a
number is used as is, and a numeric user alone is UID:UID. WORKDIR's directory is made
this way, so `USER ghost` then `WORKDIR /app` gives /app owned by 0:0.

Imported by the file-op helper process, so it imports nothing of ocibuild.
"""

from __future__ import annotations

from collections.abc import Callable


def _number(text: str) -> int | None:
    if text == "root":  # as llb.WithUser reads it
        return 0
    return int(text) if text.isdigit() else None


def _lookup(text: str, name: str, field: int) -> int | None:
    """Field `field` (a number) of the first entry named `name` in a passwd/group text."""
    for line in text.splitlines():
        parts = line.split(":")
        if parts[0] == name and len(parts) > field and parts[field].strip().isdigit():
            return int(parts[field])
    return None


def file_owner(spec: str, read: Callable[[str], str]) -> tuple[int, int] | None:
    """(uid, gid) for `spec`, reading /etc/passwd and /etc/group with `read("passwd")`
    and `read("group")` ("" when missing); None for an empty spec (the op's default)."""
    if not spec:
        return None
    user_part, _, group_part = spec.partition(":")
    uid = gid = 0
    number = _number(user_part)
    if number is not None:
        uid = gid = number
    else:
        passwd = read("passwd")
        uid = _lookup(passwd, user_part, 2) or 0
        gid = _lookup(passwd, user_part, 3) or 0
    if group_part:
        number = _number(group_part)
        if number is None:
            number = _lookup(read("group"), group_part, 2)
        if number is not None:
            gid = number
    return uid, gid
