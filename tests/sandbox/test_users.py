from __future__ import annotations

import pytest

from ocibuild.sandbox.users import UnknownUserError, resolve_user

PASSWD = """root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
svc:x:999:998::/srv:/bin/false
"""
GROUP = """root:x:0:
wheel:x:10:root,user
docker:x:998:
user:x:1000:
audio:x:29:user
"""


@pytest.mark.parametrize(("spec", "uid", "gid", "groups", "home"), [
    ("", 0, 0, [0, 10], "/root"),
    ("user", 1000, 1000, [1000, 10, 29], "/home/user"),
    ("1000", 1000, 1000, [1000, 10, 29], "/home/user"),
    ("4242", 4242, 0, [0], "/"),  # numbers need no passwd entry
    ("user:docker", 1000, 998, [998], "/home/user"),  # an explicit group: no others
    ("4242:77", 4242, 77, [77], "/"),
    ("svc", 999, 998, [998], "/srv"),
])
def test_resolve_user(spec: str, uid: int, gid: int, groups: list[int], home: str) -> None:
    user = resolve_user(spec, PASSWD, GROUP)
    assert (user.uid, user.gid, user.groups, user.home) == (uid, gid, groups, home)


@pytest.mark.parametrize(("spec", "missing"), [("ghost", "user ghost"),
                                               ("user:ghosts", "group ghosts")])
def test_unknown_names_are_errors_naming_them(spec: str, missing: str) -> None:
    with pytest.raises(UnknownUserError, match=missing):
        resolve_user(spec, PASSWD, GROUP)
