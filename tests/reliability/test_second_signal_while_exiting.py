"""A second Ctrl-C or SIGTERM that lands while the command is already exiting on the
first (its layers written, its message printed, its temporary files being removed)
ends it at once with the first signal's status: not by the signal itself (a shell
would then see no status of ours) nor with a traceback of the interrupted exit."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

_PROGRAM = textwrap.dedent("""
    import atexit, os, signal, sys, time
    from ocibuild import interrupt

    def slow_cleanup():
        print("cleaning", flush=True)
        time.sleep(30)

    interrupt.install_handlers()  # first, as the command line does
    atexit.register(slow_cleanup)  # as the store's temporaries register theirs later
    try:
        print("ready", flush=True)
        time.sleep(30)
    except KeyboardInterrupt as exc:
        interrupt.exiting(interrupt.exit_status(exc))
        sys.stderr.write(interrupt.message(exc) + "\\n")
        sys.exit(interrupt.exit_status(exc))
""")


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_second_signal_while_exiting_ends_with_the_first_ones_status(
        sig: signal.Signals, status: int) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _PROGRAM], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(sig)
        assert proc.stdout.readline() == "cleaning\n"  # exiting, in its atexit handler
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == status, err
    assert "Traceback" not in err and ("interrupted" in err or "terminated" in err), err


_STOPPING = textwrap.dedent("""
    import os, signal, sys, time
    from ocibuild import interrupt

    interrupt.install_handlers()
    try:
        os.kill(os.getpid(), signal.SIGNAL)
        time.sleep(5)
    except KeyboardInterrupt as first:
        # still unwinding, not exiting yet: a second signal lands here (in the build,
        # it landed in a lock's release inside threading)
        os.kill(os.getpid(), signal.SIGNAL)
        time.sleep(0.2)
        print("handled", type(first).__name__, flush=True)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_second_signal_before_exiting_does_not_interrupt_the_first_ones_handling(
        sig: signal.Signals) -> None:
    program = _STOPPING.replace("SIGNAL", sig.name)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=20)
    assert done.returncode == 0, done.stderr
    expected = "Terminated" if sig == signal.SIGTERM else "KeyboardInterrupt"
    assert done.stdout == f"handled {expected}\n" and "Traceback" not in done.stderr
