"""Content checksums of what a COPY/ADD reads from a local context, for cache keys.

The checksum covers exactly the selected files: path, type, permission bits (unless
--chmod replaces them), symlink target and content; never mtime or ownership (COPY from
a context always makes files owned by root or by --chown). A file's content hash is
remembered between builds under its stat signature, so a rebuild reads only the files
that changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path

from ocibuild.solver import selection

MEMO_VERSION = 1


def _signature(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode]


class ContextChecksums:
    """Checksums over one context directory, with a memo file (or none)."""

    def __init__(self, context: Path, memo_file: Path | None = None,
                 excluded: selection.Excluded | None = None) -> None:
        self.context = Path(context)
        self.excluded = excluded
        self._memo_file = memo_file
        self._memo: dict[str, list] = {}
        self._memo_written_ns = 0
        self._dirty = False
        self.files_hashed = 0  # content reads this run (tests assert the memo works)
        if memo_file is not None:
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(memo_file.read_bytes())
                if data.get("version") == MEMO_VERSION:
                    self._memo = data["files"]
                    self._memo_written_ns = int(data["written_ns"])

    def file_hash(self, rel: str, st: os.stat_result) -> str:
        sig = _signature(st)
        known = self._memo.get(rel)
        # A file changed in the same clock tick as the memo was written could keep its
        # signature; such "racily clean" entries are hashed again.
        if known is not None and known[0] == sig and st.st_mtime_ns < self._memo_written_ns:
            return str(known[1])
        h = hashlib.sha256()
        with open(self.context / rel, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        self.files_hashed += 1
        self._memo[rel] = [sig, h.hexdigest()]
        self._dirty = True
        return h.hexdigest()

    def checksum(self, patterns: Sequence[str], *, with_mode: bool = True,
                 extra_excluded: selection.Excluded | None = None,
                 allow_empty: bool = False, entries: dict[str, str] | None = None) -> str:
        """sha256 hex over every file the patterns select. Raises FileNotFoundError
        naming the first pattern that selects nothing (unless allow_empty). `entries`,
        if given, receives path -> a short digest of that entry (what `--explain-cache`
        compares to name the files that changed)."""
        h = hashlib.sha256()

        def excluded(rel: str, is_dir: bool) -> bool:
            return bool((self.excluded and self.excluded(rel, is_dir))
                        or (extra_excluded and extra_excluded(rel, is_dir)))

        for index, pattern in enumerate(patterns):
            matches = selection.expand(self.context, pattern)
            matches = [m for m in matches if not excluded(m, False) or os.path.isdir(
                self.context / selection.scoped_resolve(self.context, m))]
            if not matches and not allow_empty:
                raise FileNotFoundError(pattern)
            for match in matches:
                resolved = selection.scoped_resolve(self.context, match)
                if resolved and not os.path.lexists(self.context / resolved):
                    raise FileNotFoundError(pattern)
                h.update(f"source {index} {match}\0".encode())
                for rel, st in selection.walk(self.context, resolved, excluded):
                    entry = self._entry(rel, st, with_mode)
                    h.update(entry)
                    if entries is not None:
                        entries[rel] = hashlib.sha256(entry).hexdigest()[:16]
        return h.hexdigest()

    def _entry(self, rel: str, st: os.stat_result, with_mode: bool) -> bytes:
        mode = stat.S_IMODE(st.st_mode) if with_mode else 0
        if stat.S_ISREG(st.st_mode):
            body = "f " + self.file_hash(rel, st)
        elif stat.S_ISDIR(st.st_mode):
            body = "d"
        elif stat.S_ISLNK(st.st_mode):
            body = "l " + os.readlink(self.context / rel)
        else:
            body = f"o {stat.S_IFMT(st.st_mode)}"
        return f"{rel}\0{mode:o}\0{body}\n".encode()

    def save(self) -> None:
        """Write the memo (atomically) if anything was hashed."""
        if self._memo_file is None or not self._dirty:
            return
        self._memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._memo_file.with_name(f".tmp-{os.getpid()}-{self._memo_file.name}")
        data = {"version": MEMO_VERSION, "written_ns": time.time_ns(), "files": self._memo}
        tmp.write_text(json.dumps(data, separators=(",", ":")))
        os.replace(tmp, self._memo_file)
        self._dirty = False


def memo_path(store_root: Path, context: Path) -> Path:
    """Where the memo of a context directory lives under the store root."""
    key = hashlib.sha256(str(Path(context).resolve()).encode()).hexdigest()[:32]
    return store_root / "checksums" / f"{key}.json"
