"""The command's own files under $XDG_CACHE_HOME/ocibuild (else ~/.cache/ocibuild):
code it would otherwise make again at every start (generated_code, module_code).

They hold code this process runs, so one is read only when it is a regular file that
belongs to this user and no one else can write, and written only into a directory of
this user's (root under `sudo` with the user's HOME leaves the user's files alone).
Nothing here fails: a file that cannot be read, written or trusted is not used.
"""

from __future__ import annotations

import os


def cache_path(name: str) -> str | None:
    """Where the file `name` goes; None without an absolute cache directory."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    return os.path.join(base, "ocibuild", name)


def open_trusted(path: str, max_bytes: int) -> int | None:
    """A read-only descriptor of the file at `path` when it can be trusted (this user's,
    writable by no one else, not a link, at most `max_bytes`); else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if st.st_uid != os.geteuid() or st.st_mode & 0o022 or st.st_size > max_bytes \
            or (st.st_mode & 0o170000) != 0o100000:
        os.close(fd)
        return None
    return fd


def write(path: str, data: bytes) -> bool:
    """Replace the file at `path` with `data` as a whole (a reader sees the old file or
    the new one), mode 0600; False where it is not written."""
    from ocibuild.atomic import replace_unsynced

    directory = os.path.dirname(path)
    try:
        if not _owned_by_us(directory):
            return False
        os.makedirs(directory, mode=0o700, exist_ok=True)
        replace_unsynced(path, data)
    except OSError:
        return False
    return True


def _owned_by_us(directory: str) -> bool:
    """Whether `directory`, or the nearest of its parents that exists, is this user's."""
    while True:
        try:
            return os.stat(directory).st_uid == os.geteuid()
        except FileNotFoundError:
            parent = os.path.dirname(directory)
            if parent == directory:
                return False
            directory = parent
