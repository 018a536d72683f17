from __future__ import annotations

import json
import os

import pytest

from tests.sandbox.conftest import DRIVER, Sandboxer
from tests.support.paths import REPO


def _call(sbx: Sandboxer, target: str, args: object, **options: object) -> dict:
    request = {"call": {"target": target, "args": args, **options}}
    done = sbx.user.run(DRIVER, input=json.dumps(request), cwd=REPO)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("forked", [False, True], ids=["started", "forked"])
def test_run_in_userns_chowns_to_mapped_ids(sbx: Sandboxer, forked: bool) -> None:
    path = sbx.tmp / "owned"
    record = _call(sbx, "tests.sandbox.userns_functions:make_owned_file",
                   {"path": str(path), "uid": 1000, "gid": 1000}, forked=forked)
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


@pytest.mark.parametrize("forked", [False, True], ids=["started", "forked"])
def test_run_in_userns_reports_a_bad_target(sbx: Sandboxer, forked: bool) -> None:
    record = _call(sbx, "tests.sandbox.userns_functions:no_such_function", None,
                   forked=forked)
    assert "no_such_function" in record["error"]


@pytest.mark.parametrize("forked", [False, True], ids=["started", "forked"])
def test_a_helper_that_dies_is_reported_with_what_it_wrote(sbx: Sandboxer,
                                                           forked: bool) -> None:
    # its stderr goes to an anonymous file (memfd) whose tail the error quotes
    record = _call(sbx, "tests.sandbox.userns_functions:complain_and_die", "the disk is gone",
                   forked=forked)
    assert "ended without a result (status 3)" in record["error"], record
    assert "helper complaint: the disk is gone" in record["error"], record


def test_a_forked_helper_keeps_nothing_of_its_caller(sbx: Sandboxer) -> None:
    # the caller holds a file open and handles SIGUSR1 in Python; the helper, a fork of
    # it, has only stdio and its channel, and the default signal dispositions
    held = sbx.tmp / "held-by-the-caller"
    held.write_text("x")
    record = _call(sbx, "tests.sandbox.userns_functions:process_state", None, forked=True,
                   hold=str(held))
    state = record["result"]
    fds = {int(fd): what for fd, what in state["fds"].items()}
    assert str(held) not in fds.values()
    assert fds[0] == "/dev/null" and fds[1] == "/dev/null"
    others = {fd: what for fd, what in fds.items() if fd > 2}
    assert len(others) <= 2, others  # the channel, and the listing's own descriptor
    assert any(what.startswith("socket:") for what in others.values()), others
    assert state["handled"] == []


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
