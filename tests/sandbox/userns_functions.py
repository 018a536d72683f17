"""Functions the tests run inside the sandbox's user namespace with run_in_userns."""

from __future__ import annotations

import os
from typing import Any


def make_owned_file(args: dict[str, Any]) -> dict[str, Any]:
    with open(args["path"], "w") as f:
        f.write("x")
    os.chown(args["path"], args["uid"], args["gid"])
    st = os.stat(args["path"])
    return {"uid_inside": os.getuid(), "owner_inside": [st.st_uid, st.st_gid]}
