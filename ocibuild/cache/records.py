"""The record index: cache key -> layer, in SQLite (WAL mode, one transaction per change).

SQLite gives atomic commits and safe concurrent use by several build processes; a
crash mid-write leaves the previous state. Snapshots and cache mounts are tracked here
too, so `cache du` and `cache prune` can list and age them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocibuild.deferred import deferred_dataclass
from ocibuild.oci.descriptor import Descriptor

BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    key TEXT PRIMARY KEY,
    layer TEXT,
    diff_id TEXT,
    created TEXT NOT NULL,
    description TEXT NOT NULL,
    inputs TEXT NOT NULL,
    last_used REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    diff_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    last_used REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cache_mounts (
    dir TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL NOT NULL
);
"""


@dataclass(frozen=True)
class CacheRecord:
    """A cache key and the layer its step made (None: the step changed no file)."""

    key: str  # hex cache key computed by the solver
    layer: Descriptor | None  # the layer blob this step produced (None: no fs change)
    diff_id: str | None
    created: str  # RFC 3339
    description: str  # e.g. "[stage-a 2/3] RUN echo a" (for listings)
    inputs: dict[str, Any] = field(default_factory=dict)  # what went into the key


@deferred_dataclass(frozen=True)
class RecordRow:
    """A record with the time it was last used."""

    record: CacheRecord
    last_used: float


@deferred_dataclass(frozen=True)
class SnapshotRow:
    """An extracted layer directory and its bookkeeping."""

    diff_id: str
    size: int
    created: float
    last_used: float


@deferred_dataclass(frozen=True)
class MountRow:
    """A cache-mount directory and its bookkeeping."""

    dir: str
    id: str
    created: float
    last_used: float


class RecordDB:
    """Thread-safe access to the store's SQLite database (a connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._conn().executescript(_SCHEMA)  # idempotent; executescript commits itself

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        # a forked child must not use its parent's connection (SQLite forbids it: writes
        # get lost), so connections are per process as well as per thread
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- records ----------------------------------------------------------------------
    def get_record(self, key: str, *, touch: bool = True) -> CacheRecord | None:
        with self.transaction() as db:
            row = db.execute(
                "SELECT key, layer, diff_id, created, description, inputs FROM records "
                "WHERE key = ?", (key,)).fetchone()
            if row is not None and touch:
                db.execute("UPDATE records SET last_used = ? WHERE key = ?", (time.time(), key))
        return None if row is None else _record(row)

    def put_record(self, record: CacheRecord) -> None:
        layer = json.dumps(record.layer.to_dict(), sort_keys=True) if record.layer else None
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.key, layer, record.diff_id, record.created, record.description,
                 json.dumps(record.inputs, sort_keys=True), time.time()))

    def records(self) -> list[RecordRow]:
        rows = self._conn().execute(
            "SELECT key, layer, diff_id, created, description, inputs, last_used FROM records "
            "ORDER BY last_used").fetchall()
        return [RecordRow(_record(r[:6]), r[6]) for r in rows]

    def delete_records(self, keys: list[str]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM records WHERE key = ?", [(k,) for k in keys])

    # -- snapshots --------------------------------------------------------------------
    def touch_snapshot(self, diff_id: str, size: int | None = None) -> bool:
        """Record a snapshot (with its size), or mark a recorded one used (without);
        False when there is no row to mark."""
        now = time.time()
        with self.transaction() as db:
            if size is None:
                cursor = db.execute("UPDATE snapshots SET last_used = ? WHERE diff_id = ?",
                                    (now, diff_id))
                return cursor.rowcount > 0
            db.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?)",
                       (diff_id, size, now, now))
            return True

    def snapshots(self) -> list[SnapshotRow]:
        rows = self._conn().execute(
            "SELECT diff_id, size, created, last_used FROM snapshots ORDER BY last_used").fetchall()
        return [SnapshotRow(*r) for r in rows]

    def delete_snapshot(self, diff_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM snapshots WHERE diff_id = ?", (diff_id,))

    # -- cache mounts -----------------------------------------------------------------
    def touch_mount(self, dir_name: str, mount_id: str) -> None:
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO cache_mounts VALUES (?, ?, ?, ?) "
                "ON CONFLICT(dir) DO UPDATE SET last_used = excluded.last_used",
                (dir_name, mount_id, now, now))

    def mounts(self) -> list[MountRow]:
        rows = self._conn().execute(
            "SELECT dir, id, created, last_used FROM cache_mounts ORDER BY last_used").fetchall()
        return [MountRow(*r) for r in rows]

    def delete_mount(self, dir_name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM cache_mounts WHERE dir = ?", (dir_name,))


def _record(row: tuple[Any, ...]) -> CacheRecord:
    key, layer, diff_id, created, description, inputs = row
    return CacheRecord(
        key=key,
        layer=Descriptor.from_dict(json.loads(layer)) if layer else None,
        diff_id=diff_id,
        created=created,
        description=description,
        inputs=json.loads(inputs),
    )
