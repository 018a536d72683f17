"""The early file-op server's starter (idspace/early.py) ends at its build's stop, even
when a second stop comes while the first one's clean-up holds a lock: a starter left
waiting on a lock its own signal handler held outlived a SIGKILLed build and kept its
stderr open (seen once in the full suite: tests/build/test_store_leftovers.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO

# A starter whose server runs (the state _stopped acts in), stopped by SIGUSR2; a second
# SIGUSR2 arrives as the clean-up takes temporaries' lock, so that its handler runs
# while the lock is held.
STOPPED_TWICE = r"""
import os, signal, sys, threading, time
from pathlib import Path
from ocibuild.idspace import early
from ocibuild.cache import temporaries

root = Path(sys.argv[1])
directory = str(temporaries.process_dir(root) / "ocib-w-test")
os.mkdir(directory)

class SignallingLock:
    def __init__(self):
        self.lock, self.sent = threading.Lock(), False
    def __enter__(self):
        self.lock.acquire()
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), early._STOP_SIGNAL)
        return self
    def __exit__(self, *exc):
        self.lock.release()

temporaries._own_lock = SignallingLock()
early._made[:] = [str(root), directory]
early._waiting = True
signal.signal(early._STOP_SIGNAL, early._stopped)
os.kill(os.getpid(), early._STOP_SIGNAL)
time.sleep(30)
sys.exit(3)
"""


def test_a_second_stop_during_the_clean_up_does_not_hang_the_starter(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    proc = subprocess.run([sys.executable, "-c", STOPPED_TWICE, str(root)], cwd=REPO,
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr  # ended by the stop (os._exit(0))
    assert list((root / "tmp").iterdir()) == []  # its directories removed
