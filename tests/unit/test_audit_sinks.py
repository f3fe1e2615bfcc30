"""Audit sinks and their URLs: SQLite, JSON lines, stdout, memory; reading records back."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from guard.audit import AuditWriter, MemorySink, open_sink, read_records
from guard.audit.errors import StoreError
from guard.audit.postgres import PostgresSink
from guard.audit.sqlite import SCHEMA_VERSION, SQLiteSink
from guard.errors import ConfigError


def make_record(request_id: str = "req-1", **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "ts": "2025-01-01T12:00:00.000Z",
        "request_id": request_id,
        "principal": "p-3f2a",
        "route": "/v1/chat/completions",
        "model": "gpt-4o-mini",
        "policy": {"name": "default", "sha256": "ab" * 32},
        "mode": "enforce",
        "decision": "redact",
        "status": "ok",
        "input_entities": {"PERSON": 2},
        "moderation": {"input": {"flagged": [], "scores": {"violence": 0.01}}},
        "output_rules": [{"id": "no-secrets", "action": "warn"}],
        "stream": True,
        "truncated": False,
        "usage": {"prompt_tokens": 12, "completion_tokens": 30},
        "cost_usd": 0.0000198,
        "latency_ms": {"total": 40.0, "pii": 3.0, "moderation": 5.0, "upstream": 30.0,
                       "first_token": 12.5},
        "prev_hash": "00" * 32,
        "hash": None,
        "context": {"function": "summarise", "purpose": "résumé triage", "tags": ["hr"]},
    }
    record.update(changes)
    return record


def canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def write_all(url: str, records: list[dict[str, Any]]) -> None:
    # Unchained, so that what is stored is exactly what was emitted (chains: test_audit_chain).
    writer = AuditWriter(open_sink(url), chain=False)
    for record in records:
        writer.emit(record)
    writer.close()


# -- SQLite ---------------------------------------------------------------------------------


def test_sqlite_round_trip_fills_the_columns_and_stores_canonical_json(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    record = make_record()

    write_all(f"sqlite:///{db}", [record])

    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    (row,) = conn.execute("SELECT * FROM guard_requests").fetchall()
    conn.close()
    assert dict(row) == {
        "id": 1,
        "event": None,
        "chain": None,
        "seq": None,
        "code": None,
        "latency_ms": 40.0,
        "entities": "|PERSON=2|",
        "categories": None,
        "rules": "|no-secrets=warn|",
        "request_id": "req-1",
        "ts": "2025-01-01T12:00:00.000Z",
        "principal": "p-3f2a",
        "route": "/v1/chat/completions",
        "model": "gpt-4o-mini",
        "policy_name": "default",
        "policy_sha256": "ab" * 32,
        "mode": "enforce",
        "decision": "redact",
        "status": "ok",
        "stream": 1,
        "cost_usd": 0.0000198,
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "prev_hash": "00" * 32,
        "hash": None,
        "record": canonical(record),
    }
    assert "résumé" in row["record"]  # UTF-8 kept, not \u-escaped
    assert read_records(f"sqlite:///{db}") == [record]


def test_sqlite_store_is_in_wal_mode_with_versioned_schema_and_indexes(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    open_sink(f"sqlite:///{db}").close()

    conn = sqlite3.connect(db)
    (journal,) = conn.execute("PRAGMA journal_mode").fetchone()
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    indexed = {
        row[0] for row in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'guard_requests'"
            " AND sql IS NOT NULL"
        )
    }
    conn.close()
    assert journal == "wal"
    assert version == SCHEMA_VERSION
    for column in ("ts", "principal", "decision", "policy_name"):
        assert any(f"({column})" in sql for sql in indexed), column


def test_duplicate_request_id_is_stored_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"

    write_all(url, [make_record("req-1"), make_record("req-2"), make_record("req-1")])
    write_all(url, [make_record("req-2", decision="block")])  # a replay after restart

    assert [r["request_id"] for r in read_records(url)] == ["req-1", "req-2"]
    assert read_records(url)[1]["decision"] == "redact"  # the first write wins


def test_sqlite_fields_of_unexpected_types_become_null_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"

    write_all(url, [make_record(policy="default", usage=None, cost_usd=None, stream="yes")])

    conn = sqlite3.connect(tmp_path / "audit.db")
    row = conn.execute(
        "SELECT policy_name, prompt_tokens, cost_usd, stream FROM guard_requests"
    ).fetchone()
    conn.close()
    assert row == (None, None, None, None)
    assert read_records(url)[0]["policy"] == "default"


def test_sqlite_three_slashes_are_relative_and_four_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    relative = open_sink("sqlite:///guard-audit.db")
    two_slashes = open_sink("sqlite://other.db")
    absolute = open_sink(f"sqlite:///{tmp_path / 'abs' / 'audit.db'}")

    assert isinstance(relative, SQLiteSink)
    assert isinstance(two_slashes, SQLiteSink)
    assert isinstance(absolute, SQLiteSink)
    assert relative.path == tmp_path / "guard-audit.db"
    assert two_slashes.path == tmp_path / "other.db"
    assert absolute.path == tmp_path / "abs" / "audit.db"  # "sqlite:///" + "/tmp/..." = 4
    for sink in (relative, two_slashes, absolute):
        assert sink.path.is_file()
        sink.close()


def test_sqlite_sink_can_be_written_and_closed_from_different_threads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    sink = open_sink(url)
    sink.write([make_record("req-1")])

    worker = threading.Thread(target=sink.write, args=([make_record("req-2")],))
    worker.start()
    worker.join()
    sink.close()
    sink.write([make_record("req-3")])  # a write after close reconnects
    sink.close()

    assert [r["request_id"] for r in read_records(url)] == ["req-1", "req-2", "req-3"]


def test_sqlite_store_from_a_newer_guard_is_refused_at_open(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    with pytest.raises(ConfigError, match="newer than this Guard supports"):
        open_sink(f"sqlite:///{db}")


# -- JSON lines -----------------------------------------------------------------------------


def test_jsonl_sink_appends_valid_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"  # the directory does not exist yet
    url = f"jsonl://{path}"

    write_all(url, [make_record("req-1"), make_record("req-2")])
    write_all(url, [make_record("req-3")])

    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    assert lines[:-1] == [canonical(make_record(f"req-{i}")) for i in (1, 2, 3)]
    assert [r["request_id"] for r in read_records(url)] == ["req-1", "req-2", "req-3"]


def test_jsonl_two_slashes_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    write_all("jsonl://audit/a.jsonl", [make_record()])

    assert (tmp_path / "audit" / "a.jsonl").is_file()


def test_reading_jsonl_skips_a_line_cut_short_by_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text(canonical(make_record("req-1")) + '\n{"request_id": "req-2", "ro', "utf-8")

    assert [r["request_id"] for r in read_records(f"jsonl://{path}")] == ["req-1"]
    assert f"{path}:2" in caplog.text
    assert "req-2" not in caplog.text


# -- stdout and memory ----------------------------------------------------------------------


def test_stdout_sink_writes_one_json_line_per_record(capsys: pytest.CaptureFixture[str]) -> None:
    write_all("stdout", [make_record("req-1"), make_record("req-2")])

    out = capsys.readouterr().out
    assert out.splitlines() == [canonical(make_record("req-1")), canonical(make_record("req-2"))]


def test_stdout_url_with_slashes_is_the_same_sink(capsys: pytest.CaptureFixture[str]) -> None:
    write_all("stdout://", [make_record()])

    assert json.loads(capsys.readouterr().out) == make_record()


def test_memory_url_names_one_shared_sink_that_read_records_can_read() -> None:
    sink = open_sink("memory://test-shared")
    assert isinstance(sink, MemorySink)
    sink.clear()
    assert open_sink("memory://test-shared") is sink
    assert open_sink("memory://another") is not sink

    write_all("memory://test-shared", [make_record("req-1")])

    assert read_records("memory://test-shared") == [make_record("req-1")]
    assert read_records(sink) == [make_record("req-1")]
    sink.clear()
    assert sink.records == []


def test_read_records_limit_keeps_the_newest_oldest_first(tmp_path: Path) -> None:
    records = [make_record(f"req-{i}") for i in range(5)]
    urls = [f"sqlite:///{tmp_path / 'a.db'}", f"jsonl://{tmp_path / 'a.jsonl'}"]
    memory = MemorySink()
    memory.write(records)

    for url in urls:
        write_all(url, records)
    sources: list[str | MemorySink] = [*urls, memory]
    for source in sources:
        assert [r["request_id"] for r in read_records(source, limit=2)] == ["req-3", "req-4"]
        assert read_records(source, limit=0) == []
        assert len(read_records(source, limit=50)) == 5


def test_read_records_of_a_missing_store_raises_config_error_and_creates_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "missing.db"

    with pytest.raises(ConfigError, match="no audit store"):
        read_records(f"sqlite:///{db}")

    assert not db.exists()


def test_stdout_cannot_be_read_back() -> None:
    with pytest.raises(ConfigError, match="cannot be read back"):
        read_records("stdout")


# -- URLs -----------------------------------------------------------------------------------


def test_unknown_sink_scheme_raises_config_error_listing_the_schemes() -> None:
    with pytest.raises(ConfigError) as info:
        open_sink("kafka://broker/audit")

    message = str(info.value)
    assert "'kafka://'" in message
    for example in ("stdout", "jsonl:///", "sqlite:///guard-audit.db", "memory://"):
        assert example in message


def test_postgresql_sink_that_is_down_at_start_is_built_and_spools_beside_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARD_AUDIT_SPOOL", str(tmp_path / "spool"))

    sink = open_sink("postgresql://guard:secret@127.0.0.1:1/audit")  # nothing listens on :1

    assert isinstance(sink, PostgresSink)
    assert sink.spool_dir.parent == tmp_path / "spool"
    with pytest.raises(StoreError) as info:
        sink.write([make_record()])
    assert "127.0.0.1" in str(info.value) and "secret" not in str(info.value)
    sink.close()


def test_postgresql_url_without_host_or_database_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="names no host or database"):
        open_sink("postgresql://")


@pytest.mark.parametrize("url", ["guard-audit.db", "jsonl://", "sqlite://", "sqlite:///", "stdout://x"])
def test_sink_url_without_a_usable_target_raises_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        open_sink(url)


def test_sink_url_naming_a_directory_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        open_sink(f"jsonl://{tmp_path}")
