"""The reading side of the audit trail: filters, records, statistics, chain rows.

One :class:`AuditStore` serves both databases through their DB-API connections (sqlite3,
psycopg); the SQL is written once with ``?`` placeholders and the only dialect difference
is the substring function. JSON-lines files and memory sinks are loaded into an in-memory
SQLite database, so every review command works on every readable sink.

Large stores are read in pages by row id (keyset pagination) so that memory stays flat
with either driver, and nothing here writes - except :mod:`guard.audit.purge`, which gets a
writable store explicitly.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guard.audit.columns import COLUMNS, parse_tags
from guard.errors import ConfigError

PAGE = 1_000
_REQUESTS_ONLY = "(event IS NULL OR event NOT LIKE 'guard.audit.%')"
NOT_MARKER = ("(event IS NULL OR event NOT IN "
              "('guard.audit.chain_start', 'guard.audit.chain_end'))")
"""SQL: the row is not a chain marker (markers carry writer start/stop times, not calls)."""


@dataclass(frozen=True)
class Filters:
    """What a reviewer narrows the trail to; every field is optional and they combine (AND).

    ``since``/``until`` are record timestamps (see :mod:`guard.audit.timeparse`);
    ``until`` is exclusive. ``policy_sha`` matches a prefix of the policy's sha256.
    Trail events (chain markers, purges) are left out unless ``include_control``.
    """

    since: str | None = None
    until: str | None = None
    decisions: tuple[str, ...] = ()
    principal: str | None = None
    policy: str | None = None
    policy_sha: str | None = None
    rule: str | None = None
    entity: str | None = None
    category: str | None = None
    model: str | None = None
    status: str | None = None
    request_id: str | None = None
    include_control: bool = False

    def clause(self, contains: Callable[[str], str]) -> tuple[str, list[Any]]:
        """``(where-clause, params)``; ``contains(column)`` is the dialect's substring test."""
        terms: list[str] = [] if self.include_control else [_REQUESTS_ONLY]
        params: list[Any] = []

        def add(term: str, *values: Any) -> None:
            terms.append(term)
            params.extend(values)

        if self.since:
            add("ts >= ?", self.since)
        if self.until:
            add("ts < ?", self.until)
        if self.decisions:
            add(f"decision IN ({', '.join('?' for _ in self.decisions)})", *self.decisions)
        for column, value in (("principal", self.principal), ("policy_name", self.policy),
                              ("model", self.model), ("status", self.status),
                              ("request_id", self.request_id)):
            if value:
                add(f"{column} = ?", value)
        if self.policy_sha:
            add("policy_sha256 LIKE ?", "".join(c for c in self.policy_sha.lower()
                                                 if c in "0123456789abcdef") + "%")
        if self.rule:
            add(contains("rules"), f"|{self.rule}=")
        if self.entity:
            add(contains("entities"), f"|{self.entity.upper()}=")
        if self.category:
            add(contains("categories"), f"|{self.category}|")
        return (" AND ".join(terms) or "1 = 1"), params


@dataclass(frozen=True)
class StoredRecord:
    """A record as stored: its row id (the store's write order) and the parsed record."""

    id: int
    record: dict[str, Any]


@dataclass(frozen=True)
class ChainRow:
    """One stored row, as ``verify`` needs it: row id, the stored columns, the record text."""

    id: int
    columns: tuple[Any, ...]
    """Values in :data:`guard.audit.columns.COLUMNS` order (``record`` last)."""

    @property
    def chain(self) -> str | None:
        value = self.columns[COLUMNS.index("chain")]
        return value if isinstance(value, str) else None

    @property
    def seq(self) -> int | None:
        value = self.columns[COLUMNS.index("seq")]
        return value if isinstance(value, int) else None

    @property
    def text(self) -> str:
        return str(self.columns[-1])


@dataclass
class Stats:
    """Counts and sums over the filtered requests (see :meth:`AuditStore.stats`)."""

    requests: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    entities: dict[str, dict[str, int]] = field(default_factory=dict)
    """entity type -> {"requests": n, "occurrences": n}"""
    categories: dict[str, int] = field(default_factory=dict)
    rules: dict[str, dict[str, int]] = field(default_factory=dict)
    """rule id -> {action: hits}"""
    principals: list[dict[str, Any]] = field(default_factory=list)
    days: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "decisions": self.decisions,
                "entities": self.entities, "categories": self.categories, "rules": self.rules,
                "principals": self.principals, "days": self.days}


class AuditStore:
    """Queries over one store's ``guard_requests`` table. Not thread-safe: one per thread.

    Build one with :func:`guard.audit.urls.open_store`.
    """

    def __init__(self, conn: Any, *, dialect: str, label: str, writable: bool = False) -> None:
        self.conn = conn
        self.dialect = dialect
        """``sqlite`` or ``postgresql``."""
        self.label = label
        """The store's URL without password, for messages and manifests."""
        self.writable = writable

    # -- plumbing --------------------------------------------------------------------------

    def sql(self, text: str) -> Any:
        """``text`` in the connection's placeholder style (psycopg takes ``%s`` and bytes)."""
        if self.dialect == "postgresql":
            return text.replace("%", "%%").replace("?", "%s").encode()
        return text

    def contains(self, column: str) -> str:
        if self.dialect == "postgresql":
            return f"strpos({column}, ?) > 0"
        return f"instr({column}, ?) > 0"

    def fetchall(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(self.sql(text), tuple(params)).fetchall())

    def fetchone(self, text: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self.conn.execute(self.sql(text), tuple(params)).fetchone()
        return tuple(row) if row is not None else None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (for purge): all or nothing."""
        if not self.writable:
            raise ConfigError(f"audit store {self.label} is read-only here")
        if self.dialect == "postgresql":
            with self.conn.transaction():
                yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def meta(self, key: str) -> str | None:
        row = self.fetchone("SELECT value FROM guard_audit_meta WHERE key = ?", (key,))
        return str(row[0]) if row else None

    # -- records ---------------------------------------------------------------------------

    def count(self, filters: Filters = Filters()) -> int:
        where, params = filters.clause(self.contains)
        row = self.fetchone(f"SELECT COUNT(*) FROM guard_requests WHERE {where}", params)
        return int(row[0]) if row else 0

    def records(self, filters: Filters = Filters(), *, limit: int | None = None,
                newest_first: bool = False, before_id: int | None = None,
                after_id: int | None = None) -> Iterator[StoredRecord]:
        """Matching records in write order (or newest first), read page by page."""
        where, params = filters.clause(self.contains)
        order = "DESC" if newest_first else "ASC"
        bound_before, bound_after = before_id, after_id
        left = limit
        while left is None or left > 0:
            page = PAGE if left is None else min(PAGE, left)
            terms, values = [where], list(params)
            if bound_before is not None:
                terms.append("id < ?")
                values.append(bound_before)
            if bound_after is not None:
                terms.append("id > ?")
                values.append(bound_after)
            rows = self.fetchall(
                f"SELECT id, record FROM guard_requests WHERE {' AND '.join(terms)} "
                f"ORDER BY id {order} LIMIT {page}", values)
            for row_id, text in rows:
                yield StoredRecord(int(row_id), parse_record(text))
            if len(rows) < page:
                return
            last = int(rows[-1][0])
            if newest_first:
                bound_before = last
            else:
                bound_after = last
            if left is not None:
                left -= len(rows)

    def get(self, row_id: int) -> StoredRecord | None:
        row = self.fetchone("SELECT id, record FROM guard_requests WHERE id = ?", (row_id,))
        return StoredRecord(int(row[0]), parse_record(row[1])) if row else None

    def last_id(self) -> int:
        row = self.fetchone("SELECT COALESCE(MAX(id), 0) FROM guard_requests")
        return int(row[0]) if row else 0

    # -- aggregates ------------------------------------------------------------------------

    def stats(self, filters: Filters = Filters()) -> Stats:
        """Counts by decision, entity type, moderation category and rule; tokens and cost
        by principal and by day (UTC)."""
        where, params = filters.clause(self.contains)
        out = Stats()
        for decision, n in self.fetchall(
                f"SELECT decision, COUNT(*) FROM guard_requests WHERE {where} "
                "GROUP BY decision ORDER BY COUNT(*) DESC", params):
            out.decisions[str(decision)] = int(n)
        out.requests = sum(out.decisions.values())
        sums = ("CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT), "
                "CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT), COALESCE(SUM(cost_usd), 0)")
        for principal, n, prompt, completion, cost in self.fetchall(
                f"SELECT principal, COUNT(*), {sums} FROM guard_requests WHERE {where} "
                "GROUP BY principal ORDER BY 5 DESC, 2 DESC", params):
            out.principals.append({"principal": principal, "requests": int(n),
                                   "prompt_tokens": int(prompt),
                                   "completion_tokens": int(completion), "cost_usd": float(cost)})
        for day, n, blocked, prompt, completion, cost in self.fetchall(
                f"SELECT substr(ts, 1, 10), COUNT(*), "
                f"SUM(CASE WHEN decision = 'block' THEN 1 ELSE 0 END), {sums} "
                f"FROM guard_requests WHERE {where} GROUP BY substr(ts, 1, 10) ORDER BY 1",
                params):
            out.days.append({"day": day, "requests": int(n), "blocked": int(blocked or 0),
                             "prompt_tokens": int(prompt), "completion_tokens": int(completion),
                             "cost_usd": float(cost)})
        self._tag_stats(out, where, params)
        return out

    def _tag_stats(self, out: Stats, where: str, params: list[Any]) -> None:
        # The tag columns are short strings; summing them here keeps the SQL portable.
        last = 0
        while True:
            rows = self.fetchall(
                f"SELECT id, entities, categories, rules FROM guard_requests WHERE {where} "
                "AND (entities IS NOT NULL OR categories IS NOT NULL OR rules IS NOT NULL) "
                f"AND id > ? ORDER BY id LIMIT {PAGE * 10}", [*params, last])
            for _, entities, categories, rules in rows:
                for name, n in parse_tags(entities).items():
                    slot = out.entities.setdefault(name, {"requests": 0, "occurrences": 0})
                    slot["requests"] += 1
                    slot["occurrences"] += int(n) if n.isdigit() else 0
                for name in parse_tags(categories):
                    out.categories[name] = out.categories.get(name, 0) + 1
                for name, action in parse_tags(rules).items():
                    hits = out.rules.setdefault(name, {})
                    hits[action] = hits.get(action, 0) + 1
            if len(rows) < PAGE * 10:
                break
            last = int(rows[-1][0])
        out.entities = dict(sorted(out.entities.items(), key=lambda kv: -kv[1]["requests"]))
        out.categories = dict(sorted(out.categories.items(), key=lambda kv: -kv[1]))
        out.rules = dict(sorted(out.rules.items(), key=lambda kv: -sum(kv[1].values())))

    def decisions_over_time(self, filters: Filters = Filters(),
                            bucket: str = "hour") -> list[dict[str, Any]]:
        """``[{"bucket": "2025-06-01T13", "decision": "redact", "count": 4}, ...]``, by time."""
        width = {"hour": 13, "day": 10}[bucket]
        where, params = filters.clause(self.contains)
        rows = self.fetchall(
            f"SELECT substr(ts, 1, {width}), decision, COUNT(*) FROM guard_requests "
            f"WHERE {where} AND ts IS NOT NULL GROUP BY substr(ts, 1, {width}), decision "
            "ORDER BY 1, 2", params)
        return [{"bucket": b, "decision": d, "count": int(n)} for b, d, n in rows]

    # -- chains (verify, export, purge) ----------------------------------------------------

    def chains(self) -> list[tuple[str, int]]:
        """Every chain id with its number of stored rows."""
        return [(str(c), int(n)) for c, n in self.fetchall(
            "SELECT chain, COUNT(*) FROM guard_requests WHERE chain IS NOT NULL "
            "GROUP BY chain ORDER BY chain")]

    def chain_rows(self, chain: str | None, *, from_id: int = 0,
                   to_id: int | None = None) -> Iterator[ChainRow]:
        """The rows of one chain (``None``: rows in no chain) in write (id) order."""
        columns = ", ".join(COLUMNS)
        test = "chain = ?" if chain is not None else "chain IS NULL"
        last = from_id - 1
        while True:
            values: list[Any] = [chain] if chain is not None else []
            bound = ""
            if to_id is not None:
                bound = " AND id <= ?"
                values.append(to_id)
            rows = self.fetchall(
                f"SELECT id, {columns} FROM guard_requests WHERE {test}{bound} AND id > ? "
                f"ORDER BY id LIMIT {PAGE}", [*values, last])
            for row in rows:
                yield ChainRow(int(row[0]), tuple(row[1:]))
            if len(rows) < PAGE:
                return
            last = int(rows[-1][0])

    def count_rows(self) -> int:
        row = self.fetchone("SELECT COUNT(*) FROM guard_requests")
        return int(row[0]) if row else 0

    def purge_events(self) -> list[ChainRow]:
        return [ChainRow(int(row[0]), tuple(row[1:])) for row in self.fetchall(
            f"SELECT id, {', '.join(COLUMNS)} FROM guard_requests "
            "WHERE event = 'guard.audit.purge' ORDER BY id")]


def parse_record(text: Any) -> dict[str, Any]:
    """A stored record's JSON as a dict (``{"unreadable": True}`` if it is not one)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {"unreadable": True}
    return value if isinstance(value, dict) else {"unreadable": True}


# -- opening stores ----------------------------------------------------------------------------


def sqlite_store(path: Path, *, label: str, writable: bool = False) -> AuditStore:
    """The SQLite store at ``path``; an older schema is migrated once, by a writable open."""
    from guard.audit import sqlite as sq

    if not path.is_file():
        raise ConfigError(f"no audit store at {path} (from {label!r})")
    try:
        probe = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            (version,) = probe.execute("PRAGMA user_version").fetchone()
        finally:
            probe.close()
        if writable or version < sq.SCHEMA_VERSION:
            conn = sq.connect(path)
            if not writable:
                conn.close()
                conn = sq.connect(path, read_only=True)
        else:
            conn = sq.connect(path, read_only=True)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path} is not a readable audit database: {exc}") from None
    return AuditStore(conn, dialect="sqlite", label=label, writable=writable)


def memory_store(records: Sequence[dict[str, Any]], *, label: str) -> AuditStore:
    """Records (from a JSON-lines file or a memory sink) loaded into an in-memory store."""
    from guard.audit.sqlite import insert_rows, memory_database

    conn = memory_database()
    conn.execute("BEGIN")
    for start in range(0, len(records), PAGE):
        insert_rows(conn, records[start:start + PAGE])
    conn.execute("COMMIT")
    return AuditStore(conn, dialect="sqlite", label=label)


def postgres_store(url: str, *, writable: bool = False) -> AuditStore:
    from guard.audit.postgres import connect, display_url

    conn = connect(url, read_only=not writable)
    return AuditStore(conn, dialect="postgresql", label=display_url(url), writable=writable)
