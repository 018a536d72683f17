"""A real pseudo-terminal whose output a terminal emulator (pyte) draws: the screen a
user would look at, its colours and whether the cursor is shown."""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import termios
import threading
import time
from collections.abc import Callable
from typing import TextIO

import pyte

COLUMNS = 100
ROWS = 60  # tall enough that no test's output scrolls off


class Terminal:
    """The master side is read by a thread into the emulator; hand `slave` to a
    process (or open it as a file) and close it here once handed over."""

    def __init__(self, columns: int = COLUMNS, rows: int = ROWS) -> None:
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.screen = pyte.Screen(columns, rows)
        self._stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self._files: list[TextIO] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError as exc:  # EIO: every slave side is closed
                if exc.errno == errno.EIO:
                    return
                raise
            if not data:
                return
            with self._lock:
                self.raw += data
                self._stream.feed(data)

    def open_slave(self) -> TextIO:
        """A text stream on the terminal (closed by close_slave)."""
        stream = os.fdopen(os.dup(self.slave), "w", encoding="utf-8")
        self._files.append(stream)
        return stream

    def close_slave(self) -> None:
        for stream in self._files:
            stream.close()
        self._files.clear()
        if self.slave >= 0:
            os.close(self.slave)
            self.slave = -1

    def finish(self, timeout: float = 10.0) -> None:
        """Wait until every writer has closed the terminal and all was drawn."""
        self.close_slave()
        self._reader.join(timeout)
        assert not self._reader.is_alive(), "the terminal was never closed"
        os.close(self.master)

    def lines(self) -> list[str]:
        with self._lock:
            return [line.rstrip() for line in self.screen.display]

    def text(self) -> str:
        return "\n".join(self.lines()).strip("\n")

    def cursor_hidden(self) -> bool:
        with self._lock:
            return bool(self.screen.cursor.hidden)

    def colour_of(self, needle: str) -> str:
        """The foreground colour of the first character of `needle` on screen."""
        with self._lock:
            for y, line in enumerate(self.screen.display):
                x = line.find(needle)
                if x >= 0:
                    return str(self.screen.buffer[y][x].fg)
        raise AssertionError(f"{needle!r} is not on screen:\n{self.text()}")

    def wait_for(self, seen: Callable[[str], bool], timeout: float = 60.0,
                 alive: Callable[[], bool] = lambda: True) -> str:
        """The screen's text once `seen` holds for it."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if seen(text):
                return text
            assert alive(), f"the process ended first; the screen:\n{text}"
            assert time.monotonic() < deadline, f"never seen; the screen:\n{text}"
            time.sleep(0.05)
