"""The `ocibuild` command: a fully cached build the rebuild memo can answer is answered
before click and the engine are imported; everything else runs in ocibuild.cli.app.

The command itself (not a caller's `main([...])`) ends as the interpreter would,
without its teardown: other threads joined, atexit handlers run, stdout and stderr
flushed, then `os._exit` with the same status. The teardown's final garbage
collections and the freeing of ~250 modules' objects release nothing the exit does not
release anyway, and cost every command ~4-6 ms (a cold seed build: 0.162 s → 0.156 s,
21 interleaved runs). An exception other than SystemExit still takes the interpreter's
own way out (its traceback; Ctrl-C's signal status), and so does a command run under a
profiler or tracer (cProfile, pyinstrument, coverage write their reports there).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing: ~3 ms of a command the rebuild memo answers
if TYPE_CHECKING:
    from typing import NoReturn


def main(argv: list[str] | None = None) -> object:
    if argv is not None:
        return _main(argv, command=False)
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return _main(sys.argv[1:], command=True)  # a profiler reports at the teardown
    try:
        result = _main(sys.argv[1:], command=True)
    except SystemExit as exc:
        result = exc.code
    if result is not None and not isinstance(result, int):
        sys.exit(result)  # a message to print: the interpreter does that
    _exit_now(result or 0)  # as sys.exit(main()): a command's ctx.exit(1) returns 1


def _main(args: list[str], *, command: bool) -> object:
    rebuild = None
    if "build" in args:
        from ocibuild import rebuild_memo

        rebuild = rebuild_memo.parse(args)
        if rebuild is not None and rebuild_memo.replay(rebuild):
            return None
    if command:  # (a caller's process may have other plans)
        from ocibuild.cli import module_code

        module_code.install()
        if "build" in args:
            from ocibuild.idspace import early

            early.start(args, rebuild.root if rebuild is not None else None)
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


def _exit_now(status: int) -> NoReturn:
    """End the process with `status` as the interpreter's exit would, minus its
    teardown: in its order, other threads joined, then atexit handlers, then the
    standard streams flushed (a flush that fails gives status 120, as there)."""
    import atexit
    import os

    threading = sys.modules.get("threading")  # not loaded: no thread to wait for
    if threading is not None:
        current = threading.current_thread()
        for thread in threading.enumerate():
            if thread is not current and not thread.daemon:
                thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            status = status or 120
    os._exit(status)
