"""The `ocibuild` command: a fully cached build the rebuild memo can answer is answered
before click and the engine are imported; everything else runs in ocibuild.cli.app."""

from __future__ import annotations

import sys


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI runner cancelling the job, `kill`): stop as Ctrl-C does."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> object:
    args = sys.argv[1:] if argv is None else argv
    rebuild = None
    if "build" in args:
        from ocibuild import rebuild_memo

        rebuild = rebuild_memo.parse(args)
        if rebuild is not None and rebuild_memo.replay(rebuild):
            return None
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    try:
        from ocibuild.cli.app import run

        return run(args, rebuild)
    except KeyboardInterrupt as exc:  # before run() could catch it (during imports)
        sys.stderr.write(interrupted_message(exc) + "\n")
        sys.exit(interrupted_status(exc))


def interrupted_message(exc: KeyboardInterrupt) -> str:
    return "ocibuild: terminated" if isinstance(exc, Terminated) else "ocibuild: interrupted"


def interrupted_status(exc: KeyboardInterrupt) -> int:
    """128 + the signal, as a shell reports a command the signal ended."""
    return 143 if isinstance(exc, Terminated) else 130
