"""A function run in a forked child (forked_call.py): its bytes come back, and a child
that does not finish in the time given is killed and reaped, not waited for."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.paths import REPO

# in a process of its own: a fork is made only from a single-threaded one
SCRIPT = r"""
import json, os, time
from ocibuild.forked_call import ForkedCall

out = {}
quick = ForkedCall.start(lambda: b"answer")
out["quick"] = quick.result(timeout=10).decode()
stuck = ForkedCall.start(lambda: (time.sleep(60), b"late")[1])
pid = stuck.pid
start = time.monotonic()
out["stuck"] = stuck.result(timeout=0.2).decode()
out["waited"] = time.monotonic() - start
out["reaped"] = stuck.pid == 0 and not os.path.exists(f"/proc/{pid}")
out["again"] = stuck.result().decode()  # read already: nothing more
print(json.dumps(out))
"""


def test_a_child_past_its_time_is_killed_and_reaped() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["quick"] == "answer"
    assert out["stuck"] == "" and out["waited"] < 5
    assert out["reaped"] is True
    assert out["again"] == ""
