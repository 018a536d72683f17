"""The file-op server's resident children (one for layer writes, one for the rest)
answer stateless requests without a fork, one at a time; anything they cannot take goes
to a forked child as before. The server's early
fork server takes the builder's connection directly, or through the server."""

from __future__ import annotations

import pytest

from tests.snapshot.test_worker import run_script
from tests.support.users import User

WAIT_FOR = r"""
import os, time

def wait_for(path):
    deadline = time.monotonic() + 20
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.path.exists(path)
"""

RESIDENT_SCRIPT = WAIT_FOR + r"""
import json, threading
from pathlib import Path
from ocibuild.idspace import userns
from ocibuild.idspace.userns import Chown
from ocibuild.idspace.worker import Identity, StatelessIdentity, resident_path

out = {}
with userns.session() as s:
    userns.request(Identity())
    out["resident_listens"] = wait_for(resident_path(s.socket_path)) \
        and wait_for(resident_path(s.socket_path, for_layers=True))
    pids = [userns.request(StatelessIdentity())["pid"] for _ in range(3)]
    out["resident_pids"] = len(set(pids))
    resident = pids[0]
    out["not_the_builder"] = resident != os.getpid()
    out["forked_elsewhere"] = userns.request(Identity())["pid"] != resident
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(
        userns.request(StatelessIdentity()))) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    out["concurrent_uids"] = sorted(a["uid"] for a in answers)
    out["resident_again"] = userns.request(StatelessIdentity())["pid"] == resident
    try:
        userns.request(Chown("/nonexistent/x", 1, 1))  # stateless: the resident fails it
    except userns.UsernsCallError as e:
        out["error"] = e.message
    after = [userns.request(StatelessIdentity()) for _ in range(2)]
    out["after_failure"] = [a["uid"] for a in after]
    out["resident_left"] = resident not in {a["pid"] for a in after} \
        and after[0]["pid"] != after[1]["pid"]
deadline = time.monotonic() + 5
while Path(f"/proc/{resident}").exists() and time.monotonic() < deadline:
    time.sleep(0.01)
out["gone_with_session"] = not Path(f"/proc/{resident}").exists()
print(json.dumps(out))
"""


@pytest.mark.parametrize("rootless", [True, False], ids=["rootless", "root"])
def test_the_resident_answers_stateless_requests_until_one_fails(
        rootless: bool, sub_user: User) -> None:
    out = run_script(RESIDENT_SCRIPT, sub_user if rootless else None)
    assert out["resident_listens"] is True
    assert out["resident_pids"] == 1 and out["not_the_builder"] is True
    assert out["forked_elsewhere"] is True  # a request that is not stateless is forked
    # while the resident is busy the others are forked for; all are answered
    assert out["concurrent_uids"] == [0] * 8
    assert out["resident_again"] is True
    # a failure is reported as from a forked child, and the resident leaves: what it did
    # may have left something behind in its process; the next requests are forked for
    assert "FileNotFoundError" in str(out["error"]) and "/nonexistent/x" in str(out["error"])
    assert out["after_failure"] == [0, 0]
    assert out["resident_left"] is True
    assert out["gone_with_session"] is True


FORK_SERVER_SCRIPT = WAIT_FOR + r"""
import json, sys, tempfile
from ocibuild import unixsocket
from ocibuild.idspace import userns
from ocibuild.idspace.worker import Identity, fork_server_path
from ocibuild.sandbox import protocol
from ocibuild.sandbox.idmapping import plan_mapping
from ocibuild.sandbox.zygote_client import ForkServer

out = {}
through_server = sys.argv[1] == "through-server"
with userns.session() as s:
    userns.request(Identity())
    waiting = fork_server_path(s.socket_path)
    out["waiting"] = wait_for(waiting)
    if through_server:  # the builder does not find it: the server passes it on
        os.unlink(waiting)
        servers = [ForkServer._fork_from_session(plan_mapping()) for _ in range(2)]
        out["ready"] = [server is not None for server in servers]
        for server in servers:
            if server is not None:
                server.stop()
    else:  # on its own socket, while the server is not involved at all
        channel = unixsocket.connect(waiting)
        channel.sendall(protocol.encode(protocol.START, {
            "mapping": plan_mapping().kind, "staging": tempfile.mkdtemp()}))
        answer = protocol.receive(channel.fileno())
        second = ForkServer._fork_from_session(plan_mapping())
        out["ready"] = [answer is not None and answer[0] == protocol.READY,
                        second is not None]
        channel.close()
        if second is not None:
            second.stop()
    out["socket_left"] = os.path.exists(waiting)
print(json.dumps(out))
"""


@pytest.mark.parametrize("way", ["direct", "through-server"])
def test_the_early_fork_server_takes_the_builder_either_way(way: str, sub_user: User) -> None:
    """The first fork server the builder asks for is the one forked as the server
    started, whether the builder reaches it on its own socket or the server passes the
    connection on; a second is forked by the server."""
    out = run_script(FORK_SERVER_SCRIPT, sub_user, way)
    assert out["waiting"] is True
    assert out["ready"] == [True, True]
    assert out["socket_left"] is False
