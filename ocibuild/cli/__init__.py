"""The `ocibuild` command: a fully cached build the rebuild memo can answer is answered
before click and the engine are imported; everything else runs in ocibuild.cli.app."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> object:
    args = sys.argv[1:] if argv is None else argv
    rebuild = None
    if "build" in args:
        from ocibuild import rebuild_memo

        rebuild = rebuild_memo.parse(args)
        if rebuild is not None and rebuild_memo.replay(rebuild):
            return None
    from ocibuild import interrupt

    interrupt.install_handlers()
    try:
        from ocibuild.cli.app import run

        return run(args, rebuild)
    except KeyboardInterrupt as exc:  # before run() could catch it (during imports)
        sys.stderr.write(interrupt.message(exc) + "\n")
        sys.exit(interrupt.exit_status(exc))
