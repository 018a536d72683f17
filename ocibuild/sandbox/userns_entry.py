"""The helper side of run_in_userns (userns_call.py): enter the user namespace, call the
target, send back its result.

Started as `python -I -S -c BOOT FD` (helper_process.helper_command), like the fork
server: no site-packages scan, and nothing imported before the target but what entering
the namespace needs. The builder side's modules (subprocess, tempfile, the id-mapping
plan) cost a helper started this way ~50 ms more, paid by every build that runs a step,
since the file-op server is one of these helpers. The builder sends its own sys.path with
the request: the target's modules, and the packages they use (the layer codecs), load
from where the builder's do.
"""

from __future__ import annotations

import json
import os
import sys

from ocibuild.errors import OcibuildError
from ocibuild.sandbox import protocol


def _call(target: str, args: object) -> object:
    module, _, function = target.partition(":")
    __import__(module)
    return getattr(sys.modules[module], function)(args)


def serve(ctl: int) -> None:
    request = json.loads(sys.stdin.buffer.read())
    sys.path[:] = request["path"]
    answer(request, ctl)


def answer(request: dict, ctl: int) -> None:
    """Enter the namespace `request` asks for, call its target, and send the result (or
    why it failed) on `ctl`."""
    from ocibuild.sandbox.nsinit import SetupError, enter_user_namespace

    try:
        if request["mapping"] != "root":
            enter_user_namespace(request["mapping"], ctl, request["uid"], request["gid"])
        value = _call(request["target"], request["args"])
        protocol.send(ctl, protocol.RESULT, json.dumps(value))
        if request.get("exit_at_once"):
            sys.stderr.flush()
            os._exit(0)
    except SetupError as e:
        protocol.send(ctl, protocol.ERROR, str(e))
    except OcibuildError as e:
        protocol.send(ctl, protocol.ERROR, e.message)
    except Exception as e:
        import traceback

        traceback.print_exc()
        protocol.send(ctl, protocol.ERROR, f"{type(e).__name__}: {e}")


def main() -> None:
    fd = int(sys.argv[1])
    os.set_inheritable(fd, False)
    serve(fd)
