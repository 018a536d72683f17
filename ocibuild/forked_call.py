"""A function run in a forked child of this process, its bytes read back through a pipe.

For the rebuild memo, which reads its inputs before the engine starts any thread: the
command is single-threaded then, so a fork copies no lock another thread holds, and
the child starts in well under a millisecond (no interpreter start, no imports).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing would cost the memo's path ~8 ms
if TYPE_CHECKING:
    from collections.abc import Callable

_SIGKILL = 9  # not from the signal module, whose enums cost the memo's path ~7 ms


def single_threaded() -> bool:
    """No thread but this one (forking then copies no lock another thread holds)."""
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


class ForkedCall:
    """`function()` running in a child; result() waits for its bytes."""

    def __init__(self, pid: int, fd: int) -> None:
        self._pid, self._fd = pid, fd

    @property
    def pid(self) -> int:
        """The child's pid; 0 once it is reaped."""
        return self._pid

    @classmethod
    def start(cls, function: Callable[[], bytes]) -> ForkedCall | None:
        """None where no child can be had (the caller then does the work itself)."""
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return None
        if pid == 0:  # pragma: no cover (the child's coverage is not collected)
            try:
                status = 1
                try:
                    os.close(read_end)
                    data = memoryview(function())
                    while data:
                        data = data[os.write(write_end, data):]
                    status = 0
                finally:
                    os._exit(status)
            finally:  # an exception a signal raised on the way out: never the caller's
                os._exit(1)
        os.close(write_end)
        return cls(pid, read_end)

    def result(self, timeout: float | None = None) -> bytes:
        """What the function returned; b"" where the child failed or was killed, or has
        not finished within `timeout` seconds (it is killed then)."""
        try:
            if self._fd < 0:  # read already
                return b""
            if timeout is not None:
                import select

                if not select.select([self._fd], [], [], timeout)[0]:
                    return b""
            with os.fdopen(self._fd, "rb") as answer:
                self._fd = -1
                return answer.read()
        finally:
            self.drop()

    def drop(self) -> None:
        """End the child (killed if still running) and reap it."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._pid:
            try:
                os.kill(self._pid, _SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self._pid, 0)
            self._pid = 0
