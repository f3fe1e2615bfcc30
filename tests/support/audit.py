"""Helpers for the audit trail tests: records, a real PostgreSQL per test, raw tampering.

PostgreSQL comes from ``GUARD_TEST_POSTGRES_DSN``, else from the file ``.ci/postgres.sh``
writes (``/tmp/guard-test-postgres/dsn``). Without one, tests that need it fail under CI
(``CI=true``) and are skipped on a developer's machine. Each test gets its own schema (via
``search_path`` in the URL), so tests never see each other's rows.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parents[2]
PG_DIR = Path(os.environ.get("GUARD_PG_DIR", "/tmp/guard-test-postgres"))
DSN_FILE = PG_DIR / "dsn"
_START = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def record(i: int, **changes: Any) -> dict[str, Any]:
    """A realistic, PII-free request record; ``i`` varies decision, principal, entities.

    Record ``i`` is stamped ``i`` hours after 2025-06-01 00:00 UTC.
    """
    decision = ("allow", "redact", "warn", "block")[i % 4]
    base: dict[str, Any] = {
        "event": "guard.request",
        "ts": (_START + dt.timedelta(hours=i)).isoformat(timespec="milliseconds")[:-6] + "Z",
        "request_id": f"req-{i:05d}",
        "principal": f"key:{'abcd'[i % 3]}{i % 3:023d}",
        "route": "/v1/chat/completions",
        "model": "gpt-4o-mini" if i % 5 else "gpt-4o",
        "policy": {"name": "default" if i % 2 else "healthcare", "sha256": f"{i % 2}" * 64},
        "mode": "enforce",
        "decision": decision,
        "status": "blocked" if decision == "block" else "ok",
        "code": "guard.pii" if decision == "block" else None,
        "input_entities": {"PERSON": 1, "EMAIL_ADDRESS": 2} if decision == "redact" else
                          ({"US_SSN": 1} if decision == "block" else {}),
        "moderation": {"input": {"provider": "local", "outcome": "ok",
                                 "flagged": ["violence"] if i % 7 == 0 else [],
                                 "top_scores": {}, "unevaluated": [], "error": None,
                                 "latency_ms": 1.0}, "output": None},
        "output_rules": [{"id": "competitors", "action": "warn"}] if decision == "warn" else [],
        "output_entities": {},
        "stream": i % 2 == 0,
        "truncated": False,
        "usage": {"prompt_tokens": 100, "completion_tokens": 50},
        "cost_usd": 0.000045,
        "latency_ms": {"total": 120.5, "pii": 8.0, "moderation": 1.0, "upstream": 100.0},
        "error": None,
    }
    base.update(changes)
    return base


def postgres_dsn() -> str:
    """The test server's DSN, or fail (CI) / skip (locally) saying how to get one."""
    dsn = os.environ.get("GUARD_TEST_POSTGRES_DSN", "").strip()
    if not dsn and DSN_FILE.is_file():
        dsn = DSN_FILE.read_text().strip()
    if dsn:
        return dsn
    message = ("no PostgreSQL for the audit store tests: run `eval \"$(bash .ci/postgres.sh)\"` "
               "(it exports GUARD_TEST_POSTGRES_DSN)")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def _with_search_path(dsn: str, schema: str) -> str:
    joiner = "&" if "?" in dsn else "?"
    return f"{dsn}{joiner}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL whose tables live in a fresh schema, dropped afterwards."""
    import psycopg

    dsn = postgres_dsn()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE SCHEMA {schema}".encode())
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {dsn.split('@')[-1]} is not reachable ({exc}); "
                    "start it with .ci/postgres.sh")
    try:
        yield _with_search_path(dsn, schema)
    finally:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store: SQLite in a temp dir, or PostgreSQL in its own schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every store's spool under the test's temp dir (never the user's state directory)."""
    path = tmp_path / "spool"
    monkeypatch.setenv("GUARD_AUDIT_SPOOL", str(path))
    return path


def raw(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run SQL straight on the store (``?`` placeholders): how a tamperer would."""
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(url.split("sqlite:///", 1)[1])
        try:
            cur = conn.execute(sql, tuple(params))
            rows = cur.fetchall()
            conn.commit()
        finally:
            conn.close()
        return rows
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        result = pg.execute(sql.replace("?", "%s").encode(), tuple(params))
        return result.fetchall() if result.description else []


def pg_ctl(action: str) -> None:
    """Stop (``kill``: immediate, like a crash) or ``start`` the cluster .ci/postgres.sh made."""
    subprocess.run(["bash", str(REPO / ".ci" / "postgres.sh"), action], check=True,
                   stdout=subprocess.DEVNULL, timeout=120)


def cluster_is_ours() -> bool:
    """True when the DSN in use is the cluster .ci/postgres.sh manages (so it may be stopped)."""
    dsn = os.environ.get("GUARD_TEST_POSTGRES_DSN", "").strip()
    return (PG_DIR / "data" / "PG_VERSION").is_file() and DSN_FILE.is_file() and (
        not dsn or dsn == DSN_FILE.read_text().strip())
