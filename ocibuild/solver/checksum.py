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
from collections.abc import Hashable, Iterator, Sequence
from pathlib import Path

from ocibuild.chmod import git_mode
from ocibuild.oci.digest import hex_of_bytes, new_hash
from ocibuild.solver import selection
from ocibuild.solver.checksum_memo import FileHashMemo

_SIGNATURE = struct.Struct("<qqqQI")  # size, mtime_ns, ctime_ns, inode, mode
_SIG_LEN = _SIGNATURE.size


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
        sig = _signature(st)
        known = self._memo.get(rel)
        # A file changed in the same clock tick as the memo was written could keep its
        # signature; such "racily clean" entries are hashed again.
        if known is not None and known.startswith(sig) and len(known) == _SIG_LEN + 32 \
                and st.st_mtime_ns < self._memo.written_ns:
            return known[_SIG_LEN:].hex()
        h = new_hash()  # OpenSSL's: contexts hold large files
        with open(f"{self._base}/{rel}", "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        self.files_hashed += 1
        digest = h.digest()
        self._memo.put(rel, sig + digest)
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

        def add(rel: str, st: os.stat_result) -> None:
            entry = self._entry(rel, st, with_mode)
            h.update(entry)
            if entries is not None:
                entries.add(rel, entry)

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
                for rel, st in selection.walk(self.context, resolved, excluded):
                    add(rel, st)
        return h.hexdigest()

    def _entry(self, rel: str, st: os.stat_result, with_mode: bool) -> bytes:
        if not with_mode:
            mode = 0
        elif self.git_modes:
            mode = git_mode(st.st_mode)
        else:
            mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISREG(st.st_mode):
            body = "f " + self.file_hash(rel, st)
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


def memo_path(store_root: Path, context: Path) -> Path:
    """Where the memo of a context directory lives under the store root."""
    key = hex_of_bytes(str(Path(context).resolve()).encode())[:32]
    return store_root / "checksums" / f"{key}.memo"
