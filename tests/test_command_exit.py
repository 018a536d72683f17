"""How the `ocibuild` command ends (ocibuild/cli/__init__.py): without the interpreter's
teardown, but with what that exit promises: other threads finished, atexit handlers
run, everything written to stdout and stderr delivered, and the same exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ocibuild.errors import UsageError
from tests.support.paths import OCIBUILD, REPO

# The command's own main(), with a thread and an atexit handler of the kind a command
# leaves behind, and more output than one buffer holds still buffered at the end
SCRIPT = """\
import atexit, sys, threading, time
from pathlib import Path
from ocibuild import cli

out = Path(sys.argv[1])

def late_writer():
    time.sleep(0.3)
    (out / "thread").write_text("done")

def at_exit():
    (out / "atexit").write_text("ran")
    sys.stdout.write("y" * 100_000)

threading.Thread(target=late_writer).start()
atexit.register(at_exit)
sys.stdout.write("x" * 100_000)
sys.argv = ["ocibuild", *sys.argv[2:]]
cli.main()
print("main() returned")  # it does not: the process ends in it
"""


def _run(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", SCRIPT, str(tmp), *args],
                          capture_output=True, text=True, env=env, cwd=tmp, timeout=60)


def test_a_command_ends_after_its_threads_and_atexit_handlers(tmp_path: Path) -> None:
    done = _run(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "thread").read_text() == "done"
    assert (tmp_path / "atexit").read_text() == "ran"
    # what was written before the command, by it, and by the handler: all of it
    assert done.stdout.startswith("x" * 100_000)
    assert "ocibuild" in done.stdout[100_000:-100_000]
    assert done.stdout.endswith("y" * 100_000)
    assert "main() returned" not in done.stdout


def test_a_failing_command_keeps_its_exit_status(tmp_path: Path) -> None:
    done = _run(tmp_path, "build", "--no-such-flag", str(tmp_path))
    assert done.returncode == UsageError.exit_code, done.stderr
    assert "--no-such-flag" in done.stderr
    assert (tmp_path / "atexit").read_text() == "ran"


def test_the_command_ends_with_the_status_and_message_of_the_interpreters_exit(
        tmp_path: Path) -> None:
    args = ["--root", str(tmp_path / "store"), "build", str(tmp_path / "no-such-context")]
    command = subprocess.run([str(OCIBUILD), *args], capture_output=True, text=True,
                             timeout=120)
    # main([...]) as a caller runs it: the interpreter's own exit, teardown and all
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    called = subprocess.run([sys.executable, "-c", "import sys; from ocibuild.cli import main; "
                             "main(sys.argv[1:])", *args],
                            capture_output=True, text=True, env=env, timeout=120)
    assert command.returncode == called.returncode != 0
    assert command.stderr == called.stderr
    assert "no-such-context" in command.stderr and "Traceback" not in command.stderr


def test_a_profiler_still_gets_the_interpreters_exit_to_report_in(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    report = tmp_path / "profile.out"
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(report), "-m",
                           "ocibuild", "--version"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert report.stat().st_size > 0  # written at the interpreter's exit


# A command whose Ctrl-C is followed, while it unwinds, by an error of the standard
# library's own (threading's "release unlocked lock", seen in CI, is one)
UNWIND_FAILS = """\
import sys
from ocibuild import cli
from ocibuild.cli.app import cli as group

@group.command("unwind")
def unwind():
    try:
        raise KeyboardInterrupt
    finally:
        raise RuntimeError("release unlocked lock")

sys.argv = ["ocibuild", *sys.argv[1:]]
cli.main()
"""


def test_an_error_that_follows_from_an_interrupt_is_reported_as_the_interrupt() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args, status in ((["unwind"], 130), (["--debug", "unwind"], 1)):
        done = subprocess.run([sys.executable, "-c", UNWIND_FAILS, *args],
                              capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == status, done.stderr
        if status == 130:
            assert done.stderr == "ocibuild: interrupted\n"
        else:  # --debug shows what really happened
            assert "RuntimeError: release unlocked lock" in done.stderr
