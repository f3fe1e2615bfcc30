"""The PostgreSQL audit store (writing side), for several proxy instances sharing one trail.

Driver: psycopg 3. The writer is a thread that does blocking I/O anyway, and the review
commands are plain sync code, so psycopg's sync API serves both with one well-kept package
(it also has an asyncio API should an async caller need one). asyncpg is async-only: the
writer thread would have to run an event loop of its own and the CLI a second one.

The table mirrors the SQLite store (same columns, see ``columns``; ``record`` is the
canonical JSON as text, never ``jsonb``, whose normalisation would change the bytes the
hash covers; ``ts`` is ISO text so both stores compare it the same way). The schema is
created and migrated when a sink or store connects, under an advisory lock so two instances
starting together do not race, and its version lives in ``guard_audit_meta``.

If the server is down when the sink is built, start-up goes on (records go to the spool);
a wrong password or a missing database is a configuration error and fails at once.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from guard.audit.columns import COLUMN_TYPES, COLUMNS, row_of
from guard.audit.errors import StoreError
from guard.audit.spool import spool_dir_for
from guard.errors import ConfigError

SCHEMA_VERSION = 2
"""Same numbering as the SQLite store: version 2 is the first with PostgreSQL."""

CONNECT_TIMEOUT_S = 3
STATEMENT_TIMEOUT_MS = 15_000
_LOCK_ID = 0x6775617264  # "guard": serialises migrations between instances

_SQL_TYPES = {"int": "BIGINT", "real": "DOUBLE PRECISION", "text not null": "TEXT NOT NULL"}
_COLUMN_DEFS = ",\n    ".join(
    f"{c} {_SQL_TYPES.get(COLUMN_TYPES.get(c, ''), 'TEXT')}"
    + (" UNIQUE" if c == "request_id" else "") for c in COLUMNS)
_MIGRATIONS: dict[int, str] = {
    2: f"""
CREATE TABLE IF NOT EXISTS guard_requests (
    id BIGSERIAL PRIMARY KEY,
    {_COLUMN_DEFS},
    UNIQUE (chain, seq)
);
CREATE INDEX IF NOT EXISTS guard_requests_ts ON guard_requests (ts);
CREATE INDEX IF NOT EXISTS guard_requests_principal ON guard_requests (principal);
CREATE INDEX IF NOT EXISTS guard_requests_decision ON guard_requests (decision);
CREATE INDEX IF NOT EXISTS guard_requests_policy_name ON guard_requests (policy_name);
CREATE INDEX IF NOT EXISTS guard_requests_policy_sha256 ON guard_requests (policy_sha256);
CREATE INDEX IF NOT EXISTS guard_requests_event ON guard_requests (event);
INSERT INTO guard_audit_meta (key, value) VALUES ('unchained_before_id', '0')
    ON CONFLICT (key) DO NOTHING
""",
}

_INSERT = (
    f"INSERT INTO guard_requests ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('%s' for _ in COLUMNS)}) ON CONFLICT DO NOTHING"
)

# SQLSTATE classes that no retry will fix: authentication, missing database, privileges.
_CONFIG_STATES = ("28", "3D", "42501")
# libpq reports a refused connection without a SQLSTATE; these are its words for "never".
_REFUSED = ("password authentication failed", "does not exist", "no pg_hba.conf entry",
            "is not permitted to log in", "permission denied", "password is required",
            "invalid connection option", "invalid sslmode value")


def display_url(url: str) -> str:
    """``url`` without its password, for messages and manifests."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = urllib.parse.unquote(parts.username or "")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}@{netloc}" if user else netloc))


def _conninfo(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname and not parts.path.strip("/"):
        raise ConfigError(f"audit sink {display_url(url)!r} names no host or database; "
                          "use 'postgresql://user:password@host:5432/database'")
    query = urllib.parse.parse_qs(parts.query)
    extra = {}
    if "connect_timeout" not in query:
        extra["connect_timeout"] = str(CONNECT_TIMEOUT_S)
    if "application_name" not in query:
        extra["application_name"] = "guard-audit"
    if not extra:
        return url
    joined = "&".join(f"{k}={v}" for k, v in extra.items())
    return urllib.parse.urlunsplit(
        parts._replace(scheme="postgresql", query=f"{parts.query}&{joined}" if parts.query else joined))


def store_error(exc: psycopg.Error, url: str) -> StoreError | ConfigError:
    """A PII-free error for ``exc``: connection messages as they are, others by SQLSTATE.

    A message about a failed statement may quote a value from a record; one about a
    failed connection names only the server.
    """
    where = display_url(url)
    state = exc.sqlstate or ""
    if state.startswith(_CONFIG_STATES):
        message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else state
        return ConfigError(f"audit store {where}: {message}")
    if isinstance(exc, psycopg.OperationalError) and not state:
        text = " ".join(str(exc).split())[:300]
        if any(sign in text for sign in _REFUSED):
            # The server is up and says no: waiting will not help, fail at start-up.
            return ConfigError(f"audit store {where}: {text}")
        return StoreError(f"cannot connect to audit store {where}: {text}")
    return StoreError(f"audit store {where}: {type(exc).__name__} (SQLSTATE {state or 'none'})")


def connect(url: str, *, read_only: bool = False) -> psycopg.Connection[Any]:
    """A connection with the schema in place; raises :class:`StoreError` or :class:`ConfigError`.

    ``read_only`` connections never migrate and refuse writes in the server itself.
    """
    conninfo = _conninfo(url)
    try:
        conn = psycopg.connect(conninfo, autocommit=True)
    except psycopg.Error as exc:
        raise store_error(exc, url) from None
    try:
        conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        if read_only:
            conn.execute("SET default_transaction_read_only = on")
            version = _version(conn)
            if version != SCHEMA_VERSION:
                raise ConfigError(
                    f"audit store {display_url(url)} has schema version {version}, this "
                    f"Guard reads {SCHEMA_VERSION}" + ("" if version else
                                                       "; no Guard has written to it yet"))
        else:
            migrate(conn, url)
    except psycopg.Error as exc:
        conn.close()
        raise store_error(exc, url) from None
    except BaseException:
        conn.close()
        raise
    return conn


def _version(conn: psycopg.Connection[Any]) -> int:
    exists = conn.execute("SELECT to_regclass('guard_audit_meta') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT value FROM guard_audit_meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: psycopg.Connection[Any], url: str) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION` (one transaction, one instance at a time)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute("CREATE TABLE IF NOT EXISTS guard_audit_meta "
                     "(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        version = _version(conn)
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"audit store {display_url(url)} has schema version {version}, newer than "
                f"this Guard supports ({SCHEMA_VERSION}); upgrade Guard")
        for target in sorted(_MIGRATIONS):
            if version < target:
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        conn.execute(statement.encode())
        if version < SCHEMA_VERSION:
            conn.execute(
                "INSERT INTO guard_audit_meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (str(SCHEMA_VERSION),))


class PostgresSink:
    """Writes batches to PostgreSQL, one transaction per batch, from the writer thread.

    ``ON CONFLICT DO NOTHING`` on the unique request id and ``(chain, seq)`` makes a
    replayed batch a no-op for what is already stored. A failed batch closes the
    connection; the next write reconnects. Errors are raised as :class:`StoreError` with
    PII-free messages, which the writer answers by spooling.
    """

    chain_markers = True

    def __init__(self, url: str) -> None:
        self.url = url
        _conninfo(url)  # a malformed URL fails here, at start-up
        parts = urllib.parse.urlsplit(url)
        identity = f"{parts.hostname}:{parts.port or 5432}/{parts.path.lstrip('/')}"
        self.spool_dir = spool_dir_for("postgresql", identity)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        # Down for now: records are spooled until it is back.
        with contextlib.suppress(StoreError):
            self._conn = connect(url)

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        rows = [row_of(r) for r in records]
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.url)
                conn = self._conn
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(_INSERT, rows)
            except psycopg.Error as exc:
                self._close_locked()
                raise store_error(exc, self.url) from None
            except BaseException:
                self._close_locked()
                raise

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
