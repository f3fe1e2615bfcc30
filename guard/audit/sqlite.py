"""The SQLite audit store: one row per call, queryable columns plus the canonical record.

The columns are copies of record fields a reviewer filters on (who, when, which policy,
what was decided); ``record`` holds the whole record as canonical JSON and is the source
of truth. WAL mode lets ``guard audit`` read while the server writes, and ``busy_timeout``
lets several worker processes share one file. ``request_id`` is unique and inserts use
``INSERT OR IGNORE``, so replaying a batch after a failed commit never duplicates a call.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from guard.audit.sinks import canonical_json
from guard.errors import ConfigError

SCHEMA_VERSION = 1
"""Stored in ``PRAGMA user_version``; bump it with a migration when the table changes."""

BUSY_TIMEOUT_MS = 5_000

# AUTOINCREMENT so that ids are never reused, even after the newest rows are deleted: the
# id order is the write order a reviewer (and the hash chain) can rely on.
_SCHEMA = """
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

_COLUMNS = (
    "request_id", "ts", "principal", "route", "model", "policy_name", "policy_sha256", "mode",
    "decision", "status", "stream", "cost_usd", "prompt_tokens", "completion_tokens",
    "prev_hash", "hash", "record",
)
_INSERT = (
    f"INSERT OR IGNORE INTO guard_requests ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) else None  # bool is an int: True -> 1


def _real(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _field(record: Mapping[str, Any], outer: str, inner: str) -> Any:
    nested = record.get(outer)
    return nested.get(inner) if isinstance(nested, Mapping) else None


def row_of(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The column values for ``record``, in ``_COLUMNS`` order.

    A field of an unexpected type becomes NULL in its column instead of failing the batch;
    it is still in ``record``.
    """
    return (
        _text(record.get("request_id")),
        _text(record.get("ts")),
        _text(record.get("principal")),
        _text(record.get("route")),
        _text(record.get("model")),
        _text(_field(record, "policy", "name")),
        _text(_field(record, "policy", "sha256")),
        _text(record.get("mode")),
        _text(record.get("decision")),
        _text(record.get("status")),
        _int(record.get("stream")),
        _real(record.get("cost_usd")),
        _int(_field(record, "usage", "prompt_tokens")),
        _int(_field(record, "usage", "completion_tokens")),
        _text(record.get("prev_hash")),
        _text(record.get("hash")),
        canonical_json(record),
    )


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may already have rolled back by itself (disk full, I/O error); a second
    # ROLLBACK would raise and hide the error that matters.
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the store at ``path`` in WAL mode, with the schema in place.

    Raises :class:`ConfigError` when WAL cannot be enabled (some network file systems) or
    when the file was written by a newer Guard.
    """
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
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
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
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connect(self.path).close()
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"cannot open audit database {self.path}: {exc}") from exc
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        rows = [row_of(r) for r in records]
        with self._lock:
            if self._conn is None:
                # Runs the schema again: cheap, and survives the file being replaced.
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
    """The records stored at ``path``, oldest first; with ``limit``, the newest ``limit``."""
    conn = sqlite3.connect(path)
    try:
        if limit is None:
            rows = conn.execute("SELECT record FROM guard_requests ORDER BY id").fetchall()
        else:
            rows = conn.execute(
                "SELECT record FROM guard_requests ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
            rows.reverse()
    finally:
        conn.close()
    return [json.loads(record) for (record,) in rows]
