"""Both stores, real servers: SQLite files and a PostgreSQL server (see tests/support/audit.py).

Each test runs once per store; the PostgreSQL run gets its own schema.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from guard.audit import AuditWriter, open_sink, read_records
from guard.audit.purge import purge
from guard.audit.store import Filters
from guard.audit.urls import open_store
from guard.audit.verify import VerifyReport, verify_store
from guard.errors import ConfigError
from tests.support.audit import postgres_schema, raw, record, spool_dir, store_url

__all__ = ["spool_dir", "store_url"]  # fixtures, used by name

CHAIN_FIELDS = ("chain", "seq", "prev_hash", "hash")


def fill(url: str, n: int, *, start: int = 0, **writer_options: Any) -> AuditWriter:
    writer = AuditWriter(open_sink(url), **writer_options)
    for i in range(start, start + n):
        writer.emit(record(i))
    writer.close()
    return writer


def verify(url: str) -> VerifyReport:
    with open_store(url) as store:
        return verify_store(store)


def row_of_seq(url: str, seq: int) -> int:
    return int(raw(url, "SELECT id FROM guard_requests WHERE seq = ? AND event = 'guard.request'",
                   (seq,))[0][0])


def test_records_come_back_as_written_with_their_columns(store_url: str, spool_dir: object) -> None:
    fill(store_url, 30)

    back = read_records(store_url)
    assert [{k: v for k, v in r.items() if k not in CHAIN_FIELDS} for r in back] == [
        record(i) for i in range(30)]
    (columns,) = raw(store_url, "SELECT request_id, decision, policy_name, policy_sha256, "
                     "prompt_tokens, entities, rules, latency_ms FROM guard_requests "
                     "WHERE request_id = 'req-00005'")
    assert columns == ("req-00005", "redact", "default", "1" * 64, 100,
                       "|EMAIL_ADDRESS=2|PERSON=1|", None, 120.5)
    assert read_records(store_url, limit=2) == back[-2:]


def test_a_replayed_batch_is_stored_once(store_url: str, spool_dir: object) -> None:
    sink = open_sink(store_url)
    writer_records = [dict(record(i), chain="c1", seq=i) for i in range(5)]
    sink.write(writer_records)
    sink.write(writer_records[2:])  # a retry after a commit whose answer was lost
    sink.close()

    assert len(raw(store_url, "SELECT id FROM guard_requests")) == 5


def test_queries_and_stats_answer_the_same_in_both_stores(store_url: str, spool_dir: object) -> None:
    fill(store_url, 48)

    with open_store(store_url) as store:
        blocked = [r.record["request_id"] for r in store.records(Filters(
            decisions=("block",), since="2025-06-01T12:00:00.000Z"))]
        assert blocked == [f"req-{i:05d}" for i in range(15, 48, 4)]
        assert store.count(Filters(entity="PERSON")) == 12
        assert store.count(Filters(rule="competitors")) == 12
        assert store.count(Filters(category="violence")) == 7
        assert store.count(Filters(policy="healthcare", policy_sha="0000")) == 24
        newest = [r.record["request_id"] for r in store.records(limit=3, newest_first=True)]
        assert newest == ["req-00047", "req-00046", "req-00045"]
        stats = store.stats()
        chart = store.decisions_over_time(bucket="day")
    assert stats.requests == 48
    assert stats.decisions == {"allow": 12, "redact": 12, "warn": 12, "block": 12}
    assert stats.entities["EMAIL_ADDRESS"] == {"requests": 12, "occurrences": 24}
    assert stats.rules == {"competitors": {"warn": 12}}
    assert [(d["day"], d["requests"], d["blocked"]) for d in stats.days] == [
        ("2025-06-01", 24, 6), ("2025-06-02", 24, 6)]
    assert sum(p["cost_usd"] for p in stats.principals) == pytest.approx(48 * 0.000045)
    assert {(c["bucket"], c["decision"]): c["count"] for c in chart}[("2025-06-02", "block")] == 6


def test_verify_names_an_edited_record(store_url: str, spool_dir: object) -> None:
    fill(store_url, 20)
    assert verify(store_url).ok
    target = row_of_seq(store_url, 8)
    (text,) = raw(store_url, "SELECT record FROM guard_requests WHERE id = ?", (target,))[0]
    raw(store_url, "UPDATE guard_requests SET record = ? WHERE id = ?",
        (text.replace('"cost_usd":4.5e-05', '"cost_usd":0.0'), target))

    problem = verify(store_url).first_problem

    assert problem is not None
    assert (problem.kind, problem.row_id, problem.seq) == ("edited", target, 8)


def test_verify_names_a_deleted_record(store_url: str, spool_dir: object) -> None:
    fill(store_url, 20)
    raw(store_url, "DELETE FROM guard_requests WHERE id = ?", (row_of_seq(store_url, 11),))

    problem = verify(store_url).first_problem

    assert problem is not None
    assert (problem.kind, problem.seq) == ("deleted", 11)
    assert "seq 11 missing" in problem.message


def test_verify_names_two_swapped_records(store_url: str, spool_dir: object) -> None:
    fill(store_url, 20)
    first, second = row_of_seq(store_url, 5), row_of_seq(store_url, 6)
    columns = [c for (c,) in [("event",), ("request_id",), ("seq",), ("ts",), ("decision",),
                                ("principal",), ("prev_hash",), ("hash",), ("record",),
                                ("entities",), ("rules",), ("status",), ("code",), ("stream",),
                                ("policy_name",), ("policy_sha256",), ("model",),
                                ("categories",)]]
    a = raw(store_url, f"SELECT {', '.join(columns)} FROM guard_requests WHERE id = ?", (first,))[0]
    b = raw(store_url, f"SELECT {', '.join(columns)} FROM guard_requests WHERE id = ?", (second,))[0]
    sets = ", ".join(f"{c} = ?" for c in columns)
    # Move one out of the way first: request_id and (chain, seq) are unique.
    raw(store_url, "UPDATE guard_requests SET request_id = NULL, seq = -1 WHERE id = ?", (first,))
    raw(store_url, f"UPDATE guard_requests SET {sets} WHERE id = ?", (*a, second))
    raw(store_url, f"UPDATE guard_requests SET {sets} WHERE id = ?", (*b, first))

    problem = verify(store_url).first_problem

    assert problem is not None
    assert problem.kind == "reordered"
    assert problem.row_id == first and problem.seq == 6


def test_purge_leaves_a_trail_that_verifies_and_still_catches_tampering(
        store_url: str, spool_dir: object) -> None:
    fill(store_url, 30)
    fill(store_url, 10, start=30)  # a second writer (process start): a second chain

    with open_store(store_url, writable=True) as store:
        first = purge(store, "2025-06-01T12:00:00.000Z")
        assert first.deleted == 13  # 12 requests and the chain start of the first chain
        assert verify_store(store).ok
        second = purge(store, "2025-06-01T20:00:00.000Z")  # may delete the first purge's event
        assert second.deleted == 8
        report = verify_store(store)
    assert report.ok, report.problems
    assert {c.start for c in report.chains} >= {"purged"}
    remaining = [r["request_id"] for r in read_records(store_url)]
    assert remaining == [f"req-{i:05d}" for i in range(20, 40)]

    raw(store_url, "DELETE FROM guard_requests WHERE id = ?", (row_of_seq(store_url, 25),))
    problem = verify(store_url).first_problem
    assert problem is not None and problem.kind == "deleted" and problem.seq == 25
    raw(store_url, "DELETE FROM guard_requests WHERE seq < 25")  # purged again, but unexplained
    problem = verify(store_url).first_problem
    assert problem is not None and "no purge explains it" in problem.message


def test_a_cut_prefix_without_a_purge_event_is_reported(store_url: str, spool_dir: object) -> None:
    fill(store_url, 10)
    raw(store_url, "DELETE FROM guard_requests WHERE seq < 3")

    problem = verify(store_url).first_problem

    assert problem is not None and problem.kind == "deleted" and "no purge explains it" in problem.message


def test_two_processes_writing_at_once_each_keep_a_valid_chain(
        store_url: str, spool_dir: object) -> None:
    script = textwrap.dedent("""
        import sys
        from guard.audit import AuditWriter, open_sink
        url, tag = sys.argv[1], sys.argv[2]
        writer = AuditWriter(open_sink(url), batch_size=20, flush_interval_s=0.005)
        for i in range(300):
            writer.emit({"event": "guard.request", "request_id": f"{tag}-{i}",
                         "ts": "2025-06-01T00:00:00.000Z", "decision": "allow"})
        writer.close(timeout=30)
        assert writer.stats["written"] == 300, writer.stats
    """)
    open_sink(store_url).close()  # the schema exists before the race
    workers = [subprocess.Popen([sys.executable, "-c", script, store_url, tag])
               for tag in ("a", "b")]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]

    report = verify(store_url)

    assert report.ok, report.problems
    assert len(report.chains) == 2
    assert all(c.rows == 302 and c.ended for c in report.chains)
    ids = [json.loads(t)["request_id"] for (t,) in raw(
        store_url, "SELECT record FROM guard_requests WHERE event = 'guard.request' ORDER BY id")]
    assert sorted(ids) == sorted([f"a-{i}" for i in range(300)] + [f"b-{i}" for i in range(300)])
    interleaved = sum(1 for x, y in itertools.pairwise(ids) if x[0] != y[0])
    assert interleaved >= 1  # they really did write at the same time


def test_postgresql_refusing_the_credentials_is_a_config_error_at_start() -> None:
    with postgres_schema() as url:
        wrong = url.replace("guard:guard@", "guard:wrong-password@", 1)
        if wrong == url:
            pytest.skip("the test DSN does not use the .ci/postgres.sh credentials")
        with pytest.raises(ConfigError, match="password authentication failed") as info:
            open_sink(wrong)
        assert "wrong-password" not in str(info.value)


def test_postgresql_schema_is_versioned_and_migration_is_idempotent(spool_dir: object) -> None:
    with postgres_schema() as url:
        for _ in range(3):
            open_sink(url).close()
        assert raw(url, "SELECT value FROM guard_audit_meta WHERE key = 'schema_version'") == [("2",)]
        indexes = {name for (name,) in raw(
            url, "SELECT indexname FROM pg_indexes WHERE tablename = 'guard_requests' "
            "AND schemaname = current_schema()")}
        for column in ("ts", "principal", "decision", "policy_name", "policy_sha256"):
            assert f"guard_requests_{column}" in indexes
