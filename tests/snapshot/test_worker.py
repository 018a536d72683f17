"""The build's file-op server: requests run under the sandbox mapping, each in a
process of its own, with errors for people; the server goes away with the session."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.paths import REPO
from tests.support.users import User

SCRIPT = r"""
import json, os, socket, struct, threading
from ocibuild.idspace import userns
from ocibuild.idspace.worker import REQUEST, receive_message
from ocibuild.idspace.userns import Chown
from ocibuild.idspace.worker import Identity
out = {}
with userns.session() as s:
    first = userns.request(Identity())
    second = userns.request(Identity())
    out["ids"] = [first["uid"], first["gid"]]
    out["forked"] = first["pid"] != second["pid"] and first["pid"] != os.getpid()
    try:
        userns.request(Chown("/nonexistent/x", 1, 1))
    except userns.UsernsCallError as e:
        out["error"] = e.message
    refused = []
    for message in (
            {"request": "os.getcwd", "fields": {}},
            {"request": "ocibuild.idspace.userns.remove_local", "fields": {"path": "/"}},
            {"request": Chown.wire_name, "fields": {"path": "/x", "uid": "0", "gid": 0}},
            {"request": Chown.wire_name, "fields": {"path": "/x", "uid": 0, "gid": 0,
                                                    "mode": 0}},
            {"request": Chown.wire_name, "fields": {"path": "/x", "uid": 0}},
            {"request": Chown.wire_name}):
        try:
            s.exchange(message)
        except userns.UsernsCallError as e:
            refused.append(e.message)
    out["refused"] = refused
    with socket.socket(socket.AF_UNIX) as raw:  # a message that is not JSON at all
        raw.connect(s.socket_path)
        raw.sendall(REQUEST + struct.pack("!I", 8) + b"not json")
        out["not_json"] = receive_message(raw)
    out["served_after"] = userns.request(Identity())["uid"] == 0
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        userns.request(Identity())["pid"])) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    out["distinct_pids"] = len(set(results))
    path = s.socket_path
out["socket_gone"] = not os.path.exists(path)
# without a session: a helper process per request, checked the same way
out["helper_uid"] = userns.request(Identity())["uid"]
from ocibuild.idspace.worker import ANSWER_ONE
from ocibuild.sandbox import SandboxError, run_in_userns
try:
    run_in_userns(ANSWER_ONE, {"request": Chown.wire_name, "fields": {"path": "/x"}})
except SandboxError as e:
    out["helper_refused"] = e.message
print(json.dumps(out))
"""


def run_script(script: str, user: User | None, *args: str) -> dict[str, object]:
    """The JSON that `script` prints, run as `user` (None: as this process) from the
    repository."""
    cmd = [sys.executable, "-c", script, *args]
    if user is None:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    else:
        proc = user.run(cmd, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_requests_run_mapped_to_root_in_forked_children(sub_user: User) -> None:
    out = run_script(SCRIPT, sub_user)
    assert out["ids"] == [0, 0]  # the unprivileged user is root over its mapped ids
    assert out["forked"] is True
    assert out["distinct_pids"] == 8
    assert "FileNotFoundError" in str(out["error"]) and "/nonexistent/x" in str(out["error"])
    # malformed requests are refused before anything runs, and the server goes on
    assert out["refused"] == [
        "refused a request: unknown request 'os.getcwd'",
        "refused a request: unknown request 'ocibuild.idspace.userns.remove_local'",
        "refused a request: Chown.uid: expected int, got str",
        "refused a request: Chown: unexpected field mode",
        "refused a request: Chown: missing field gid",
        "refused a request: not a request: expected an object with request and fields",
    ]
    assert out["not_json"] == {"error": "refused a request: JSONDecodeError: Expecting "
                                        "value: line 1 column 1 (char 0)"}
    assert out["served_after"] is True
    assert out["helper_uid"] == 0
    assert "refused a request: Chown: missing field uid, gid" in str(out["helper_refused"])
    assert out["socket_gone"] is True


def test_server_works_as_root_too() -> None:
    out = run_script(SCRIPT, None)
    assert out["ids"] == [0, 0] and out["forked"] is True and out["distinct_pids"] == 8


RESTART_SCRIPT = r"""
import json, os, signal, time
from pathlib import Path
from ocibuild.idspace import userns
from ocibuild.idspace.worker import Identity

def server_pids():
    children = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        children.update(int(p) for p in (task / "children").read_text().split())
    return children

out = {}
with userns.session():
    out["before"] = userns.request(Identity())["uid"]
    killed = server_pids()
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    for pid in killed:
        while Path(f"/proc/{pid}").exists() and "Z" not in (
                Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[:1] or ["Z"]):
            time.sleep(0.01)
    out["killed"] = len(killed)
    out["after"] = userns.request(Identity())["uid"]
    out["new_server"] = bool(server_pids() - killed)
print(json.dumps(out))
"""


def test_a_killed_server_is_started_again(sub_user: User) -> None:
    """A file-op server that dies during a build (here: killed) does not fail the
    build's next step: the next request starts a new one."""
    proc = sub_user.run([sys.executable, "-c", RESTART_SCRIPT], cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["killed"] == 1
    assert out["before"] == out["after"] == 0
    assert out["new_server"] is True
