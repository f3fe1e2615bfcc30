"""Hash chains: how the writer links records, and what verify makes of a chain."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import pytest

from guard.audit import AuditWriter, MemorySink, open_sink
from guard.audit.chain import CHAIN_END, CHAIN_START, HMAC_KEY_ENV, Chain, record_hash
from guard.audit.urls import open_store
from guard.audit.verify import verify_store
from tests.support.audit import raw, record


def write(url: str, n: int, *, start: int = 0, key: bytes | None = None) -> AuditWriter:
    writer = AuditWriter(open_sink(url), hmac_key=key)
    for i in range(start, start + n):
        writer.emit(record(i))
    writer.close()
    return writer


def verify(url: str, key: bytes | None = None):  # type: ignore[no-untyped-def]
    with open_store(url) as store:
        return verify_store(store, key=key)


def test_each_record_links_to_the_one_before_it_in_its_writers_chain() -> None:
    sink = MemorySink()
    writer = AuditWriter(sink, hmac_key=None)
    for i in range(5):
        writer.emit(record(i))
    writer.close()

    records = sink.records
    assert [r["seq"] for r in records] == [0, 1, 2, 3, 4]  # a memory sink gets no markers
    assert {r["chain"] for r in records} == {writer.stats["chain"]}
    assert records[0]["prev_hash"] is None
    for before, after in itertools.pairwise(records):
        assert after["prev_hash"] == before["hash"]
    for r in records:
        assert r["hash"] == record_hash(r)


def test_two_writers_keep_two_chains_and_a_restart_starts_a_new_one() -> None:
    sink = MemorySink()
    first, second = AuditWriter(sink), AuditWriter(sink)
    first.emit(record(1))
    second.emit(record(2))
    first.close()
    second.close()

    chains = {r["request_id"]: r["chain"] for r in sink.records}
    assert chains["req-00001"] != chains["req-00002"]
    assert all(r["seq"] == 0 for r in sink.records)


def test_stores_mark_where_a_chain_starts_and_ends(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    write(url, 3)

    events = [e for (e,) in raw(url, "SELECT event FROM guard_requests ORDER BY id")]
    assert events == [CHAIN_START, "guard.request", "guard.request", "guard.request", CHAIN_END]
    (start,) = raw(url, "SELECT record FROM guard_requests WHERE seq = 0")
    assert json.loads(start[0])["hash_alg"] == "sha256"
    assert verify(url).ok


def test_a_hmac_chain_verifies_only_with_its_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    write(url, 3, key=b"k" * 32)

    assert verify(url, key=b"k" * 32).ok
    without = verify(url)
    assert without.first_problem is not None
    assert without.first_problem.kind == "unverifiable"
    assert HMAC_KEY_ENV in without.first_problem.message
    wrong = verify(url, key=b"x" * 32)
    assert wrong.first_problem is not None and "another key" in wrong.first_problem.message


def test_the_hmac_key_comes_from_the_environment_by_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HMAC_KEY_ENV, "from-the-environment")
    url = f"sqlite:///{tmp_path / 'a.db'}"
    writer = AuditWriter(open_sink(url))
    writer.emit(record(1))
    writer.close()

    assert verify(url, key=b"from-the-environment").ok
    assert not verify(url).ok


def test_a_hand_edited_column_is_named_as_edited(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    write(url, 10)
    (row_id,) = raw(url, "SELECT id FROM guard_requests WHERE request_id = 'req-00003'")[0]
    raw(url, "UPDATE guard_requests SET decision = 'allow' WHERE id = ?", (row_id,))

    report = verify(url)

    assert not report.ok
    problem = report.first_problem
    assert problem is not None
    assert (problem.kind, problem.row_id) == ("edited", row_id)
    assert "decision" in problem.message


def test_an_edited_and_rehashed_record_breaks_the_link_of_the_next_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    write(url, 10)
    (row_id, text) = raw(url, "SELECT id, record FROM guard_requests WHERE seq = 4")[0]
    changed = json.loads(text)
    changed["cost_usd"] = 0.0
    changed["hash"] = record_hash(changed)  # a careful tamperer, without a key
    raw(url, "UPDATE guard_requests SET record = ?, cost_usd = 0.0, hash = ? WHERE id = ?",
        (json.dumps(changed, sort_keys=True, separators=(",", ":")), changed["hash"], row_id))

    problem = verify(url).first_problem

    assert problem is not None
    assert problem.kind == "edited" and problem.seq == 4
    assert "seq 5 does not link to seq 4" in problem.message


def test_a_row_in_no_chain_is_reported_as_inserted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    write(url, 3)
    forged = AuditWriter(open_sink(url), chain=False)
    forged.emit(record(50))
    forged.close()

    problem = verify(url).first_problem

    assert problem is not None and problem.kind == "inserted" and problem.chain is None


def test_a_record_after_the_chains_end_is_reported_as_inserted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    write(url, 2)
    (chain, head) = raw(url, "SELECT chain, hash FROM guard_requests WHERE seq = 3")[0]
    forger = Chain(chain_id=chain)
    forger.seq, forger.head = 4, head
    sink = open_sink(url)
    sink.write([forger.link(record(77))])
    sink.close()

    problem = verify(url).first_problem

    assert problem is not None and problem.kind == "inserted" and problem.seq == 4


def test_a_store_written_before_chains_is_migrated_and_its_old_rows_are_legacy(
        tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript("""
        CREATE TABLE guard_requests (id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT UNIQUE,
            ts TEXT, principal TEXT, route TEXT, model TEXT, policy_name TEXT, policy_sha256 TEXT,
            mode TEXT, decision TEXT, status TEXT, stream INTEGER, cost_usd REAL,
            prompt_tokens INTEGER, completion_tokens INTEGER, prev_hash TEXT, hash TEXT,
            record TEXT NOT NULL);
        PRAGMA user_version = 1;
    """)
    old = record(1, prev_hash=None, hash=None)
    conn.execute("INSERT INTO guard_requests (request_id, decision, ts, record) VALUES (?, ?, ?, ?)",
                 (old["request_id"], old["decision"], old["ts"],
                  json.dumps(old, sort_keys=True, separators=(",", ":"))))
    conn.commit()
    conn.close()
    url = f"sqlite:///{db}"

    write(url, 2, start=10)

    assert raw(url, "SELECT entities FROM guard_requests WHERE request_id = 'req-00001'") == [
        ("|EMAIL_ADDRESS=2|PERSON=1|",)]
    report = verify(url)
    assert report.ok and report.legacy_rows == 1
    with open_store(url) as store:
        assert store.count() == 3


def test_an_exported_jsonl_file_verifies_with_its_manifest_and_not_when_cut(tmp_path: Path) -> None:
    from guard.audit.export import export

    url = f"sqlite:///{tmp_path / 'a.db'}"
    write(url, 40)
    out = tmp_path / "june2-3.jsonl"
    with open_store(url) as store:
        result = export(store, out, since="2025-06-02T00:00:00.000Z",
                        until="2025-06-04T00:00:00.000Z")
    manifest = result.manifest
    assert manifest["requests"] > 0 and manifest["chains"][0]["first_seq"] > 0

    with open_store(f"jsonl://{out}") as exported:
        assert verify_store(exported, manifest=manifest).ok
        assert not verify_store(exported).ok  # the start is explained only by the manifest

    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:-1]) + "\n")  # drop the chain head
    with open_store(f"jsonl://{out}") as exported:
        problem = verify_store(exported, manifest=manifest).first_problem
    assert problem is not None and problem.kind == "deleted"
