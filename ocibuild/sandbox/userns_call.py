"""run_in_userns: call a Python function in a helper process inside a user namespace
with the sandbox's id mapping and no other isolation (the helper side: userns_entry.py).

An unprivileged builder can chown only to ids mapped in a user namespace it owns, so
extracting a layer (files of uid 1000 become host uid 200999 with subordinate ids) or
reading a step's files owned by mapped ids must run in there. The function gets the
JSON-decoded argument and returns something JSON can encode. As root (identity
mapping) the helper runs without a user namespace: the ids are the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import TYPE_CHECKING, Any, BinaryIO

from ocibuild import unixsocket
from ocibuild.errors import OcibuildError
from ocibuild.sandbox import protocol
from ocibuild.sandbox.errors import SandboxError
from ocibuild.sandbox.helper_process import helper_command
from ocibuild.sandbox.idmapping import apply_mapping, plan_mapping

if TYPE_CHECKING:
    import subprocess

_STDERR_TAIL = 4000


def run_in_userns(target: str, args: Any = None, *, exit_at_once: bool = False,
                  forked: bool = False) -> Any:
    """Call `target` ("package.module:function") with `args` inside a user namespace
    mapped as current_idmap() says, and return its result (both through JSON). With
    `exit_at_once` the helper ends as soon as it has sent the result, without the
    interpreter's clean-up: for a target that leaves nothing to clean up (the file-op
    server, whose many modules took ~6 ms to tear down, which its builder waits for).

    `forked`: the helper is a fork of this process, not a new interpreter, for a caller
    that is single-threaded and holds nothing a step may see (the early file-op starter,
    a small fork of the command): it keeps the modules already loaded, and the ~10 ms of
    an interpreter's start, on cores a cold build keeps busy."""
    module, _, function = target.partition(":")
    if not module or not function:
        raise SandboxError(f"run_in_userns target must be 'module:function', not {target!r}")
    plan = plan_mapping()
    request = json.dumps({"target": target, "args": args, "mapping": plan.kind,
                          "uid": os.geteuid(), "gid": os.getegid(),
                          "path": sys.path, "exit_at_once": exit_at_once}).encode()
    errors = _error_file()
    parent_sock, child_sock = unixsocket.pair()
    with contextlib.closing(parent_sock), errors:
        try:
            if forked:
                proc: subprocess.Popen[bytes] | _ForkedHelper = _ForkedHelper(
                    request, child_sock.fileno(), errors.fileno())
            else:
                import subprocess

                proc = subprocess.Popen(
                    helper_command("ocibuild.sandbox.userns_entry", str(child_sock.fileno())),
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
                    pass_fds=(child_sock.fileno(),))
                assert proc.stdin is not None
                with proc.stdin:
                    proc.stdin.write(request)
        finally:
            child_sock.close()
        result: Any = None
        failure: str | None = None
        got_result = False
        while (message := protocol.receive(parent_sock.fileno())) is not None:
            kind, payload = message
            if kind == protocol.NEED_MAPPING:
                try:
                    apply_mapping(plan, proc.pid)
                except (OcibuildError, OSError) as e:
                    failure = str(e)
                    parent_sock.sendall(protocol.encode(protocol.MAPPING_FAILED, None))
                else:
                    parent_sock.sendall(protocol.encode(protocol.MAPPED, None))
            elif kind == protocol.RESULT:
                result, got_result = json.loads(protocol.parse_text(payload)), True
            elif kind == protocol.ERROR and failure is None:
                failure = protocol.parse_text(payload)
        status = proc.wait()
        if failure is not None:
            raise SandboxError(f"{target} failed in the user namespace: {failure}")
        if not got_result:
            errors.seek(0)
            tail = errors.read()[-_STDERR_TAIL:].decode(errors="replace")
            raise SandboxError(f"{target}: the user-namespace helper ended without a result "
                               f"(status {status}){': ' + tail if tail else ''}")
        return result


def _error_file() -> BinaryIO:
    """Where the helper's stderr goes, for the tail of a failure: an anonymous file, not
    tempfile's (tempfile loads shutil and random, which the early starter, and so the
    file-op server it forks, would carry along)."""
    try:
        return open(os.memfd_create("ocibuild-helper-errors", os.MFD_CLOEXEC), "w+b")
    except OSError:  # no memfd_create (a seccomp profile may refuse it)
        import tempfile

        return tempfile.TemporaryFile()


class _ForkedHelper:
    """run_in_userns's helper as a fork of the caller: what the started one does with the
    request (userns_entry.answer), with nothing of the caller's but `ctl` and stdio
    (stdin and stdout /dev/null, stderr `errors`), signal handlers back to default, and no
    way back into the caller's code (it always ends with os._exit)."""

    def __init__(self, request: bytes, ctl: int, errors: int) -> None:
        self.pid = os.fork()
        if self.pid == 0:
            status = 1
            try:
                _leave_caller(ctl, errors)
                from ocibuild.sandbox.userns_entry import answer

                answer(json.loads(request), ctl)
                status = 0
            finally:
                os._exit(status)

    def wait(self) -> int:
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])


def _leave_caller(ctl: int, errors: int) -> None:
    import signal

    for number in signal.valid_signals():
        if callable(signal.getsignal(number)):
            signal.signal(number, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(errors, 2)
    os.closerange(3, ctl)
    os.closerange(ctl + 1, _MAX_FD)


_MAX_FD = 1 << 20
