"""Each new step or layer directory placed away from the ones just deleted (ext4's
top-directory flag, `chattr +T`).

ext4 puts a new directory in or near its parent's block group and a file in its
directory's group (the Orlov allocator), and without a journal its inode allocator
avoids inodes freed in the last minute (six while their inode table block is still
dirty): for every new inode it scans the group's bitmap from the start, reading the
deletion time of each free inode it meets, and takes a recently freed one only when
nothing else is left. The store makes and deletes big trees under the same few parents
all the time (`snapshots/steps/`, emptied through the trash while the next build runs),
so a COPY of 20,000 files would create its inodes in the groups the last build's step
has just freed, each create walking past thousands of them: measured here (2 cores,
ext4 mounted without a journal), copying bench/'s bigctx context right after deleting
an earlier copy took 3-5 s of kernel time instead of 1.3-1.9 s.

A directory flagged top-level spreads its subdirectories as the filesystem's root does:
each new step or layer directory goes to a group with above-average free inodes and
the fewest directories, away from the trees just deleted, and everything below it
follows it there. The flag changes only where directories are placed (never a file's
content, owner or mode; it is not inherited), ext4 with a journal does not check
deletion times at all, and other filesystems refuse the flag, which then changes
nothing.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
from pathlib import Path

_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000

_flagged: set[str] = set()  # directories this process has already flagged


def spread_children(directory: Path) -> None:
    """Flag `directory` (which must exist) so that new directories in it are spread over
    the disk; quietly nothing where the filesystem or the directory's owner refuses."""
    key = os.fspath(directory)
    if key in _flagged:
        return
    _flagged.add(key)
    with contextlib.suppress(OSError):
        fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            flags = array.array("i", [0])
            fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
            if not flags[0] & _FS_TOPDIR_FL:
                flags[0] |= _FS_TOPDIR_FL
                fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags, True)
        finally:
            os.close(fd)
