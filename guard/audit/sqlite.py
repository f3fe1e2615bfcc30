"""The SQLite audit store (writing side): one row per record, queryable columns plus the record.

The columns (see ``columns``) are copies of record fields a reviewer filters on; ``record``
holds the whole record as canonical JSON and is the source of truth the hash chain covers.
WAL mode lets ``guard audit`` read while the server writes, and ``busy_timeout`` lets several
worker processes share one file. ``request_id`` and ``(chain, seq)`` are unique and inserts
use ``INSERT OR IGNORE``, so replaying a batch (from the spool, after a crash) never
duplicates a record.

Schema versions live in ``PRAGMA user_version`` and are applied in order by :func:`connect`;
version 2 added the chain, the tag columns and ``guard_audit_meta``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from guard.audit.columns import COLUMN_TYPES, COLUMNS, row_of
from guard.audit.spool import spool_dir_for
from guard.errors import ConfigError

__all__ = ["SCHEMA_VERSION", "SQLiteSink", "connect", "ensure_schema", "insert_rows",
           "memory_database", "read_sqlite", "row_of"]

SCHEMA_VERSION = 2
"""Stored in ``PRAGMA user_version``; bump it with a migration when the table changes."""

BUSY_TIMEOUT_MS = 5_000

# Version 1, exactly as it was shipped: later versions migrate from it. AUTOINCREMENT so
# that ids are never reused, even after the newest rows are deleted: within a chain the id
# order is the write order, which verify relies on to notice reordering.
_V1 = """
CREATE TABLE IF NOT EXISTS guard_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT UNIQUE,
    ts TEXT,
    principal TEXT,
    route TEXT,
    model TEXT,
    policy_name TEXT,
    policy_sha256 TEXT,
    mode TEXT,
    decision TEXT,
    status TEXT,
    stream INTEGER,
    cost_usd REAL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    prev_hash TEXT,
    hash TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS guard_requests_ts ON guard_requests (ts);
CREATE INDEX IF NOT EXISTS guard_requests_principal ON guard_requests (principal);
CREATE INDEX IF NOT EXISTS guard_requests_decision ON guard_requests (decision);
CREATE INDEX IF NOT EXISTS guard_requests_policy_name ON guard_requests (policy_name);
"""
_V1_COLUMNS = ("request_id", "ts", "principal", "route", "model", "policy_name", "policy_sha256",
               "mode", "decision", "status", "stream", "cost_usd", "prompt_tokens",
               "completion_tokens", "prev_hash", "hash", "record")
_SQL_TYPES = {"int": "INTEGER", "real": "REAL", "text not null": "TEXT NOT NULL"}

_V2_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS guard_requests_chain_seq ON guard_requests (chain, seq);
CREATE INDEX IF NOT EXISTS guard_requests_policy_sha256 ON guard_requests (policy_sha256);
CREATE INDEX IF NOT EXISTS guard_requests_event ON guard_requests (event);
CREATE TABLE IF NOT EXISTS guard_audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_INSERT = (
    f"INSERT OR IGNORE INTO guard_requests ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)})"
)


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may already have rolled back by itself (disk full, I/O error); a second
    # ROLLBACK would raise and hide the error that matters.
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _statements(script: str) -> list[str]:
    return [s for s in script.split(";") if s.strip()]


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    """Add the chain and tag columns; fill them for rows written by version 1.

    Rows from before the chain have no ``chain``; ``unchained_before_id`` remembers where
    they end, so ``verify`` can tell them from a row inserted later by hand.
    """
    for column in COLUMNS:
        if column not in _V1_COLUMNS:
            kind = _SQL_TYPES.get(COLUMN_TYPES.get(column, ""), "TEXT")
            conn.execute(f"ALTER TABLE guard_requests ADD COLUMN {column} {kind}")
    for statement in _statements(_V2_INDEXES):
        conn.execute(statement)
    old = conn.execute("SELECT id, record FROM guard_requests").fetchall()
    updates = []
    for row_id, text in old:
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if isinstance(record, dict):
            updates.append((*row_of(record)[:-1], row_id))
    if updates:
        sets = ", ".join(f"{c} = ?" for c in COLUMNS[:-1])
        conn.executemany(f"UPDATE guard_requests SET {sets} WHERE id = ?", updates)
    (last,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM guard_requests").fetchone()
    conn.execute("INSERT OR REPLACE INTO guard_audit_meta (key, value) "
                 "VALUES ('unchained_before_id', ?)", (str(last),))


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create or migrate the schema in one write transaction (autocommit connection)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Read again under the write lock: another process may have migrated meanwhile.
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version < 1:
            for statement in _statements(_V1):
                conn.execute(statement)
        if version < 2:
            _migrate_to_2(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def memory_database() -> sqlite3.Connection:
    """An empty store in memory: how records from a JSON-lines file become queryable."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    ensure_schema(conn)
    return conn


def insert_rows(conn: sqlite3.Connection, records: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``records`` (ignoring ones already stored) inside the caller's transaction."""
    conn.executemany(_INSERT, [row_of(r) for r in records])


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection to the store at ``path`` in WAL mode, with the schema in place.

    ``read_only`` opens an existing store without ever writing to it (no migration: an old
    store must be opened once by a writer first). Raises :class:`ConfigError` when WAL
    cannot be enabled (some network file systems) or when the file was written by a newer
    Guard.
    """
    if read_only:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                               check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            (version,) = conn.execute("PRAGMA user_version").fetchone()
        except BaseException:
            conn.close()
            raise
        if version != SCHEMA_VERSION:
            conn.close()
            raise ConfigError(
                f"audit database {path} has schema version {version}, this Guard reads "
                f"{SCHEMA_VERSION}; " + ("upgrade Guard" if version > SCHEMA_VERSION else
                                         "start a Guard writer on it once to migrate it"))
        return conn
    # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT) below.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        (journal,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(journal).lower() != "wal":
            raise ConfigError(
                f"audit database {path}: cannot enable WAL mode (got {journal!r}); "
                "put it on a local file system"
            )
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"audit database {path} has schema version {version}, newer than this "
                f"Guard supports ({SCHEMA_VERSION}); upgrade Guard or use another file"
            )
        if version < SCHEMA_VERSION:
            ensure_schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn


class SQLiteSink:
    """Writes batches to the ``guard_requests`` table, one transaction per batch.

    The schema is created when the sink is built, so a bad path fails at start-up. The
    connection used for writing is opened lazily by the first :meth:`write`, that is in the
    writer thread. A lock serialises :meth:`write` and :meth:`close`, which is what makes
    ``check_same_thread=False`` safe: the connection is never used by two threads at once,
    even if a sink is shared or closed from another thread. A write after :meth:`close`
    opens a new connection.

    ``spool_dir`` (``<file>.spool`` beside the database, or under ``GUARD_AUDIT_SPOOL``)
    is where the writer spools batches the database refuses (locked for too long, disk
    full); ``chain_markers`` asks the writer to mark where its chain starts and ends.
    """

    chain_markers = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connect(self.path).close()
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"cannot open audit database {self.path}: {exc}") from exc
        self.spool_dir = spool_dir_for("sqlite", str(self.path.absolute()),
                                       self.path.with_name(self.path.name + ".spool"))
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        rows = [row_of(r) for r in records]
        with self._lock:
            if self._conn is None:
                # Checks the schema again: cheap, and survives the file being replaced.
                self._conn = connect(self.path)
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, rows)
                conn.execute("COMMIT")
            except BaseException:
                # Retry from a fresh connection: the file may have been replaced or the
                # connection left unusable by the error.
                _rollback(conn)
                self._close_locked()
                raise

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def read_sqlite(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The request records stored at ``path``, oldest first; with ``limit``, the newest ``limit``.

    Chain markers and purge events (``guard.audit.*``) are left out: they describe the
    trail, not a call.
    """
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        where = "WHERE event IS NULL OR event NOT LIKE 'guard.audit.%'" if version >= 2 else ""
        if limit is None:
            rows = conn.execute(f"SELECT record FROM guard_requests {where} ORDER BY id").fetchall()
        else:
            rows = conn.execute(
                f"SELECT record FROM guard_requests {where} ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
            rows.reverse()
    finally:
        conn.close()
    return [json.loads(record) for (record,) in rows]
