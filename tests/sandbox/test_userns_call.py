from __future__ import annotations

import json
import os

from tests.sandbox.conftest import DRIVER, Sandboxer
from tests.support.paths import REPO


def _call(sbx: Sandboxer, target: str, args: object) -> dict:
    done = sbx.user.run(DRIVER, input=json.dumps({"call": {"target": target, "args": args}}),
                        cwd=REPO)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_run_in_userns_chowns_to_mapped_ids(sbx: Sandboxer) -> None:
    path = sbx.tmp / "owned"
    record = _call(sbx, "tests.sandbox.userns_functions:make_owned_file",
                   {"path": str(path), "uid": 1000, "gid": 1000})
    container, host, _ = record["uids"][-1]
    if sbx.full_ids:
        assert record["result"] == {"uid_inside": 0, "owner_inside": [1000, 1000]}
        expected = host + 1000 - container  # what current_idmap() says uid 1000 is
        assert (os.stat(path).st_uid, os.stat(path).st_gid) == (expected, expected)
        if sbx.user.name != "root":
            assert expected == 200999  # /etc/subuid: ocib-sub:200000:65536
    else:
        assert record["uids"] == [[0, sbx.user.uid, 1]]
        assert "Invalid argument" in record["error"]


def test_run_in_userns_reports_a_bad_target(sbx: Sandboxer) -> None:
    record = _call(sbx, "tests.sandbox.userns_functions:no_such_function", None)
    assert "no_such_function" in record["error"]


# module -> why the helper must not load it: each is tens of milliseconds that every
# build running a step would pay again in its file-op server's start
BUILDER_SIDE = {
    "subprocess": "starting processes is the builder's part",
    "tempfile": "the builder's error capture",
    "site": "the site-packages scan (python -S)",
    "ocibuild.sandbox.userns_call": "the builder side of run_in_userns",
    "ocibuild.sandbox.idmapping": "the mapping plan, which the builder applies",
    "ocibuild.sandbox.zygote_client": "the fork server's builder side",
}


def test_the_helper_loads_only_what_entering_the_namespace_needs(sbx: Sandboxer) -> None:
    record = _call(sbx, "tests.sandbox.userns_functions:helper_state", None)
    state = record["result"]
    assert state["no_site"] == 1
    assert {m: why for m, why in BUILDER_SIDE.items() if m in state["modules"]} == {}
    assert state["codec_found"] is True  # the builder's sys.path came along
