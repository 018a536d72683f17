"""Content checksums of what a COPY/ADD reads from a local context, for cache keys.

The checksum covers exactly the selected files: path, type, permission bits (unless
--chmod replaces them), symlink target and content; never mtime or ownership (COPY from
a context always makes files owned by root or by --chown). With `git_modes`
(`--context-modes=git`) the permission bits are chmod.git_mode's, those the copy gives
the entry, so a key never stands for content of other modes. A file's content hash is
remembered between builds under its stat signature, so a rebuild reads only the files
that changed (checksum_memo.py keeps those hashes compact).

While a `KeptChecksums` is active, the checksums a build computes are also kept in it,
keyed by everything they depend on but the files, and a later build under it takes
them instead of walking the context again. Only for a caller to whom a later build must see
the context as the first saw it: the rebuild memo's second build, which rests on the
context's state taken before the first began.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from collections import deque
from collections.abc import Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.chmod import git_mode
from ocibuild.oci.digest import hex_of_bytes, new_hash
from ocibuild.solver import selection
from ocibuild.solver.checksum_memo import FileHashMemo

if TYPE_CHECKING:
    from ocibuild.threads import Task, Threads

    # a file's content hash: the memo's (hex), being taken, taken, failed, not a file's
    _Content = str | Task[bytes] | bytes | OSError | None

_SIGNATURE = struct.Struct("<qqqQI")  # size, mtime_ns, ctime_ns, inode, mode
_SIG_LEN = _SIGNATURE.size
# Files this big are hashed ahead on worker threads, one per core, while the walk goes
# on and hashes the small ones (hashlib lets go of the interpreter for their chunks):
# bench/'s bigctx context (20k small files, 200 MB in 20 big ones) took 0.37 s on one
# thread here, 0.23 s this way, and 1 GB in 4 files 0.70 s, 0.31 s. A small file's
# hash costs less than a hand-off to a thread.
HASH_AHEAD_SIZE = 256 << 10
# entries the walk may run ahead of the checksum (~0.3 KB each): memory stays bounded
_AHEAD_ENTRIES = 16384
_READ_CHUNK = 1 << 20


class EntryDigests:
    """A short digest of each entry checksums read, by path (what `--explain-cache`
    compares to name the files that changed): at most `limit` of them, beyond it only
    their number (a path read twice past the limit counts twice)."""

    __slots__ = ("limit", "digests", "count")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.digests: dict[str, str] = {}
        self.count = 0

    def add(self, rel: str, entry: bytes) -> None:
        if rel in self.digests or len(self.digests) < self.limit:
            self.count += rel not in self.digests
            self.digests[rel] = hex_of_bytes(entry)[:16]
        else:
            self.count += 1

    def merge(self, other: EntryDigests) -> None:
        for rel, digest in other.digests.items():
            if rel in self.digests or len(self.digests) < self.limit:
                self.count += rel not in self.digests
                self.digests[rel] = digest
            else:
                self.count += 1
        self.count += other.count - len(other.digests)


class KeptChecksums:
    """Checksums builds computed while it was active, by everything they depend on but
    the files, for later builds while it is active (see the module's notes: those do not
    see the files change in between)."""

    def __init__(self) -> None:
        self._found: dict[Hashable, tuple[str, EntryDigests]] = {}

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        global _active
        outer, _active = _active, self
        try:
            yield
        finally:
            _active = outer


_active: KeptChecksums | None = None


def kept_checksum(key: Hashable) -> tuple[str, EntryDigests] | None:
    """The checksum and entries the active KeptChecksums holds under `key`."""
    return None if _active is None else _active._found.get(key)


def keep_checksum(key: Hashable, checksum: str, entries: EntryDigests) -> None:
    """Keep a checksum under `key` in the active KeptChecksums, if one is."""
    if _active is not None:
        _active._found[key] = (checksum, entries)


def _signature(st: os.stat_result) -> bytes:
    return _SIGNATURE.pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


class ContextChecksums:
    """Checksums over one context directory, with a memo file (or none)."""

    def __init__(self, context: Path, memo_file: Path | None = None,
                 excluded: selection.Excluded | None = None, *,
                 reincludes: bool = True, git_modes: bool = False) -> None:
        self.context = Path(context)
        self.git_modes = git_modes  # modes as git knows them (chmod.git_mode)
        self.excluded = excluded
        self.reincludes = reincludes  # may an exception pattern keep a path in `excluded`
        self._memo_file = memo_file
        self._base = os.fspath(self.context)
        self._memo = FileHashMemo(_SIG_LEN + 32)  # signature + sha256 digest
        self.files_hashed = 0  # content reads this run (tests assert the memo works)
        if memo_file is not None:
            self._memo.load(memo_file)

    def file_hash(self, rel: str, st: os.stat_result) -> str:
        known = self.remembered(rel, st)
        if known is not None:
            return known.hex()
        return self.remember(rel, st, _content_hash(f"{self._base}/{rel}"))

    def remembered(self, rel: str, st: os.stat_result) -> bytes | None:
        """The file's content hash as the memo knows it for this stat signature, if it
        does."""
        known = self._memo.get(rel)
        # A file changed in the same clock tick as the memo was written could keep its
        # signature; such "racily clean" entries are hashed again.
        if known is not None and known.startswith(_signature(st)) \
                and len(known) == _SIG_LEN + 32 and st.st_mtime_ns < self._memo.written_ns:
            return known[_SIG_LEN:]
        return None

    def remember(self, rel: str, st: os.stat_result, digest: bytes) -> str:
        """Put a file's new content hash in the memo; returns it as hex."""
        self.files_hashed += 1
        self._memo.put(rel, _signature(st) + digest)
        return digest.hex()

    def checksum(self, patterns: Sequence[str], *, with_mode: bool = True,
                 extra_excluded: selection.Excluded | None = None,
                 allow_empty: bool = False, entries: EntryDigests | None = None,
                 parents: bool = False) -> str:
        """sha256 hex over every file the patterns select (`parents`: as COPY --parents
        selects them). Raises FileNotFoundError naming the first pattern without
        wildcards that selects nothing (unless allow_empty); a wildcard may match
        nothing, as in BuildKit. `entries`, if given, receives each entry read."""
        h = new_hash()

        def excluded(rel: str, is_dir: bool) -> bool:
            return bool((self.excluded and self.excluded(rel, is_dir))
                        or (extra_excluded and extra_excluded(rel, is_dir)))

        def add(rel: str, st: os.stat_result, content: str | None = None) -> None:
            entry = self._entry(rel, st, with_mode, content)
            h.update(entry)
            if entries is not None:
                entries.add(rel, entry)

        ahead = _HashAhead(self)
        try:
            for index, pattern in enumerate(patterns):
                if parents:
                    found = selection.parents_entries(
                        self.context, pattern, self.excluded,
                        (lambda kept: extra_excluded(kept, False)) if extra_excluded else None)
                    if not found and not allow_empty and not selection.has_wildcards(pattern):
                        raise FileNotFoundError(pattern)
                    for kept, rel, st in found:
                        h.update(f"parents {index} {kept}\0".encode())
                        add(rel, st)
                    continue
                matches = selection.expand(self.context, pattern)
                matches = [m for m in matches if selection.visible(
                    self.context, m, self.excluded, reincludes=self.reincludes)]
                if not matches and not allow_empty and not selection.has_wildcards(pattern):
                    raise FileNotFoundError(pattern)
                for match in matches:
                    resolved = selection.scoped_resolve(self.context, match)
                    if resolved and not os.path.lexists(self.context / resolved):
                        raise FileNotFoundError(pattern)
                    h.update(f"source {index} {match}\0".encode())
                    walked = selection.walk(self.context, resolved, excluded)
                    for rel, st, content in ahead.hashed(walked):
                        add(rel, st, content)
        finally:
            ahead.close()
        return h.hexdigest()

    def _entry(self, rel: str, st: os.stat_result, with_mode: bool,
               content: str | None = None) -> bytes:
        """The line a checksum hashes for one entry (`content`: its file's content hash,
        when already taken)."""
        if not with_mode:
            mode = 0
        elif self.git_modes:
            mode = git_mode(st.st_mode)
        else:
            mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISREG(st.st_mode):
            body = "f " + (content if content is not None else self.file_hash(rel, st))
        elif stat.S_ISDIR(st.st_mode):
            body = "d"
        elif stat.S_ISLNK(st.st_mode):
            body = "l " + os.readlink(f"{self._base}/{rel}")
        else:
            body = f"o {stat.S_IFMT(st.st_mode)}"
        return f"{rel}\0{mode:o}\0{body}\n".encode()

    def save(self) -> None:
        """Write the memo (atomically) if anything was hashed."""
        if self._memo_file is not None and self._memo.changed:
            self._memo.save(self._memo_file)


def _content_hash(path: str) -> bytes:
    h = new_hash()  # OpenSSL's: contexts hold large files
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # one buffer read into again and again, up to the end of the file (a new MiB per
        # read is mapped and faulted in afresh each time: ~15% of a big context's hashing)
        buffer = bytearray(min(os.fstat(fd).st_size + 1, _READ_CHUNK))
        view = memoryview(buffer)
        while got := os.readv(fd, [buffer]):
            h.update(view[:got])
        return h.digest()
    finally:
        os.close(fd)


class _HashAhead:
    """The walk's entries in its order, each regular file's content hash with it: the
    memo's, or taken now, or ahead for a big file on a worker thread (started at the
    first such file) while this thread goes on hashing the small ones after it."""

    def __init__(self, checksums: ContextChecksums) -> None:
        self._checksums = checksums
        self._base = os.fspath(checksums.context)
        self._pool: Threads | None = None

    def hashed(self, walked: Iterable[tuple[str, os.stat_result]]
               ) -> Iterator[tuple[str, os.stat_result, str | None]]:
        waiting: deque[tuple[str, os.stat_result, _Content]] = deque()
        remembered, is_file, base = self._checksums.remembered, stat.S_ISREG, self._base
        for rel, st in walked:
            content: _Content = None
            if is_file(st.st_mode):
                known = remembered(rel, st)
                if known is not None:
                    content = known.hex()
                elif st.st_size >= HASH_AHEAD_SIZE:
                    content = self._threads().submit(_content_hash, f"{base}/{rel}")
                elif waiting:  # its turn comes after a big file's
                    content = _ahead_of_order(f"{base}/{rel}")
                else:
                    content = self._checksums.remember(rel, st, _content_hash(f"{base}/{rel}"))
            if not waiting and (content is None or isinstance(content, str)):
                yield rel, st, content  # the usual case, at once
                continue
            waiting.append((rel, st, content))
            while waiting and (len(waiting) > _AHEAD_ENTRIES or not _running(waiting[0][2])):
                yield self._handed(*waiting.popleft())
        while waiting:
            yield self._handed(*waiting.popleft())

    def _handed(self, rel: str, st: os.stat_result, content: _Content
                ) -> tuple[str, os.stat_result, str | None]:
        """The entry with its content hash as hex, a new one remembered (in the walk's
        order, on this thread), or the error reading the file raised."""
        if isinstance(content, OSError):
            raise content
        if content is None or isinstance(content, str):
            return rel, st, content
        digest = content if isinstance(content, bytes) else content.result()
        return rel, st, self._checksums.remember(rel, st, digest)

    def _threads(self) -> Threads:
        if self._pool is None:
            from ocibuild.threads import Threads

            workers = max(1, min(4, os.cpu_count() or 1))
            self._pool = Threads(workers, "context-hash")
        return self._pool

    def close(self) -> None:
        """Stop: calls not started are dropped, running ones finish."""
        if self._pool is not None:
            self._pool.shutdown(cancel_pending=True)
            self._pool = None


def _ahead_of_order(path: str) -> bytes | OSError:
    """The file's hash, or the error reading it, raised when its entry's turn comes."""
    try:
        return _content_hash(path)
    except OSError as exc:
        return exc


def _running(content: _Content) -> bool:
    """Whether a hash taken ahead is still being taken."""
    return not (content is None or isinstance(content, (str, bytes, OSError))
                or content.done())


def memo_path(store_root: Path, context: Path) -> Path:
    """Where the memo of a context directory lives under the store root."""
    key = hex_of_bytes(str(Path(context).resolve()).encode())[:32]
    return store_root / "checksums" / f"{key}.memo"
