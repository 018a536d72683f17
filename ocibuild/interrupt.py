"""The command's interrupt (Ctrl-C, SIGTERM) as an event that worker threads can see.

A signal raises KeyboardInterrupt in the main thread only, which is usually waiting for
workers; the event lets those workers (downloads, uploads) stop at their next chunk
instead of finishing whole blobs first."""

from __future__ import annotations

import threading

requested = threading.Event()


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI runner cancelling the job, `kill`): stop as Ctrl-C does."""


def _on_sigint(signum: int, frame: object) -> None:
    if _raised_before():
        return
    raise KeyboardInterrupt


def _on_sigterm(signum: int, frame: object) -> None:
    if _raised_before():
        return
    raise Terminated


def _raised_before() -> bool:
    """Only the first signal interrupts the main thread. A second one (Ctrl-C pressed
    twice, a runner's second SIGTERM) that came before the command is exiting would be
    raised wherever the first one's unwinding is: in a lock's release inside threading,
    it turned the interrupt into "RuntimeError: release unlocked lock" and a traceback.
    The command is stopping already; once it is exiting (exiting()), a further signal
    ends it at once."""
    if requested.is_set():
        return True
    requested.set()
    return False


def install_handlers() -> None:
    """For the command line: SIGINT and SIGTERM set `requested`, then interrupt the main
    thread (SIGINT as Python's own handler does; SIGTERM as Terminated)."""
    import atexit
    import signal

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)  # left alone when the parent ignores it
    signal.signal(signal.SIGTERM, _on_sigterm)
    atexit.register(_ignore_when_exiting)  # early: it runs after every later one


_exiting = threading.Event()  # set once an interrupted command is ending


def exiting(status: int) -> None:
    """The command is ending on an interrupt, its layers written: a further signal (Ctrl-C
    pressed twice, a runner's second SIGTERM) ends it at once with the same `status`.
    Raised in the middle of the exit instead, it would print a traceback, or end the
    process by the signal itself; what the exit still had to do is removing temporary
    files, which the next command does for a dead one."""
    import os
    import signal

    def now(signum: int, frame: object) -> None:
        os._exit(status)

    _exiting.set()
    for sig, ours in ((signal.SIGINT, _on_sigint), (signal.SIGTERM, _on_sigterm)):
        if signal.getsignal(sig) is ours:
            signal.signal(sig, now)


def _ignore_when_exiting() -> None:
    """(The last exit handler.) The interpreter's teardown puts back the default action
    of the signals it handles, and a signal then ends the process by itself (a shell
    reports that as a crash of ours): an exiting command ignores them from here on."""
    import signal

    if _exiting.is_set():
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) not in (signal.SIG_IGN, None):
                signal.signal(sig, signal.SIG_IGN)


def behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The interrupt that `exc` was raised while handling, if any. The handler raises it
    wherever the main thread is, and some code of the standard library is not safe
    against that (a Condition's wait, in Python 3.11): unwinding, it can fail with an
    error of its own, which the command reports as the interrupt it came from."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return None


def message(exc: KeyboardInterrupt) -> str:
    return "ocibuild: terminated" if isinstance(exc, Terminated) else "ocibuild: interrupted"


def exit_status(exc: KeyboardInterrupt) -> int:
    """128 + the signal, as a shell reports a command the signal ended."""
    return 143 if isinstance(exc, Terminated) else 130
