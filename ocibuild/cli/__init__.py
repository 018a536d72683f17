"""The `ocibuild` command: a fully cached build the rebuild memo can answer is answered
before click and the engine are imported; everything else runs in ocibuild.cli.app.

When the command is done, what it allocated is frozen out of the garbage collector's
reach (`gc.freeze`): the interpreter's exit would otherwise walk every object of every
imported module again in its final collections, ~3 ms of a command as short as a push
the registry already holds. The objects are still freed, and the exit still runs
atexit handlers and finalizers of what it frees; only garbage cycles left at exit are
not collected, which the exit never promised to do anyway.
"""

from __future__ import annotations

import gc
import sys


def main(argv: list[str] | None = None) -> object:
    args = sys.argv[1:] if argv is None else argv
    rebuild = None
    if "build" in args:
        from ocibuild import rebuild_memo

        rebuild = rebuild_memo.parse(args)
        if rebuild is not None and rebuild_memo.replay(rebuild):
            gc.freeze()
            return None
        if argv is None:  # the command itself (a caller's process may have other plans)
            from ocibuild.idspace import early

            early.start(args, rebuild.root if rebuild is not None else None)
    if argv is None:
        from ocibuild.cli import generated_code

        generated_code.install()
    from ocibuild import interrupt

    interrupt.install_handlers()
    try:
        from ocibuild.cli.app import run

        return run(args, rebuild)
    except KeyboardInterrupt as exc:  # before run() could catch it (during imports)
        interrupt.exiting(interrupt.exit_status(exc))
        sys.stderr.write(interrupt.message(exc) + "\n")
        sys.exit(interrupt.exit_status(exc))
    finally:
        gc.freeze()
