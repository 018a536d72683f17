"""Where blobs are known to live in registries, so a push can mount instead of upload.

Every pull and push records (registry, repository) for the blobs it moved; a later
push of the same blob to another repository of that registry asks for a
cross-repository mount from one of them. The record is a hint: if the registry no
longer has the blob there, the mount request simply starts a normal upload.

A location already recorded is written again only when its time is over an hour old:
a push of an unchanged image records the same blobs every time, and a commit that
writes costs a journal and its fsyncs (~8 ms, a tenth of such a push), while one that
changes nothing costs none. The order "most recently seen" is kept to the hour.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

REFRESH_AFTER = 3600.0  # seconds before a recorded location's time is written again

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blob_sources (
    digest TEXT NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    seen REAL NOT NULL,
    PRIMARY KEY (digest, registry, repository)
)
"""

_RECORD = """
INSERT INTO blob_sources VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (digest, registry, repository) DO UPDATE SET seen = excluded.seen
WHERE seen < excluded.seen - ?5
"""


class BlobSources:
    """A record of blob locations; in memory, or in an SQLite file shared by processes."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._memory: dict[tuple[str, str], dict[str, float]] = {}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._db() as db:
                db.execute(_SCHEMA)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        assert self.path is not None
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    def add(self, registry: str, repository: str, digests: Iterable[str]) -> None:
        now = time.time()
        rows = [(d, registry, repository, now) for d in dict.fromkeys(digests)]
        if not rows:
            return
        with self._lock:
            for d, reg, repo, seen in rows:
                self._memory.setdefault((d, reg), {})[repo] = seen
            if self.path is not None:
                with self._db() as db:
                    db.executemany(_RECORD, [(*row, REFRESH_AFTER) for row in rows])

    def repositories(self, registry: str, digest: str) -> list[str]:
        """Repositories of `registry` known to hold `digest`, most recently seen first."""
        with self._lock:
            found = dict(self._memory.get((digest, registry), {}))
            if self.path is not None:
                with self._db() as db:
                    for repo, seen in db.execute(
                        "SELECT repository, seen FROM blob_sources"
                        " WHERE digest = ? AND registry = ?", (digest, registry)):
                        found[repo] = max(seen, found.get(repo, 0.0))
        return sorted(found, key=lambda r: -found[r])
