"""What the layers below a layer show at a path, as overlayfs merges them.

Extracting a layer on its own (an overlay lower directory) loses one thing applying it
onto its parent keeps (containerd applies a layer onto the mounted parent): an entry
below a directory the layer does not hold itself, where a lower layer has a symlink
(`lib -> usr/lib`, then `lib/x.so`), belongs where the symlink leads. The extractor asks
this view, when it must create a directory the layer lacks, what the lower layers have
there: a symlink to follow, a directory to copy the attributes of, or nothing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPAQUE = ("user.overlay.opaque", "trusted.overlay.opaque")

Seen = tuple[str, "os.stat_result | str"]  # ("dir", stat) or ("link", target)


class LowerView:
    """Read-only lookups in overlay lower directories (given bottom first)."""

    def __init__(self, dirs: Sequence[Path]) -> None:
        self._fds: list[int] = []
        try:
            for d in reversed(dirs):
                self._fds.append(os.open(d, _DIR_FLAGS))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    def entry(self, parts: Sequence[str]) -> Seen | None:
        """A directory or a symlink at `parts` in the merged lower layers, else None.
        Every lookup is one component from an open directory, never following a link."""
        level = self._fds  # directories merged at this depth, top layer first
        opened: list[int] = []
        try:
            for i, comp in enumerate(parts):
                merged: list[int] = []
                seen: Seen | None = None
                for fd in level:
                    try:
                        st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                        break  # a whiteout hides the layers below
                    if not stat.S_ISDIR(st.st_mode):
                        if seen is None and stat.S_ISLNK(st.st_mode):
                            seen = ("link", os.readlink(comp, dir_fd=fd))
                        break  # a non-directory hides the layers below
                    if seen is None:
                        seen = ("dir", st)
                    sub = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                    opened.append(sub)
                    merged.append(sub)
                    if _opaque(sub):
                        break
                if seen is None or (seen[0] == "link" and i < len(parts) - 1):
                    return None  # absent, or a link the layer's own directory replaces
                if i == len(parts) - 1:
                    return seen
                level = merged
            return None
        finally:
            for fd in opened:
                os.close(fd)


def _opaque(fd: int) -> bool:
    for name in _OPAQUE:
        try:
            if os.getxattr(fd, name) == b"y":
                return True
        except OSError:
            continue
    return False
