"""``guard audit``: the reviewer's commands on a SQLite store (PostgreSQL: integration tests)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from guard.audit import AuditWriter, open_sink
from guard.audit.cli import audit
from tests.support.audit import raw, record


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    writer = AuditWriter(open_sink(url))
    for i in range(40):
        writer.emit(record(i))
    writer.close()
    return url


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(audit, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_query_filters_combine_and_jsonl_gives_whole_records(url: str) -> None:
    lines = run("query", "--sink", url, "--decision", "block", "--since", "2025-06-02",
                "--until", "2025-06-04", "--format", "jsonl").splitlines()
    records = [json.loads(line) for line in lines]

    assert records and all(r["decision"] == "block" for r in records)
    assert all("2025-06-02" <= r["ts"] < "2025-06-04" for r in records)
    expected = [r for r in (record(i) for i in range(40))
                if r["decision"] == "block" and "2025-06-02" <= r["ts"] < "2025-06-04"]
    assert [r["request_id"] for r in records] == [r["request_id"] for r in expected]


@pytest.mark.parametrize(("option", "value", "check"), [
    ("--entity", "US_SSN", lambda r: "US_SSN" in r["input_entities"]),
    ("--rule", "competitors", lambda r: r["output_rules"]),
    ("--category", "violence", lambda r: r["moderation"]["input"]["flagged"] == ["violence"]),
    ("--policy", "healthcare", lambda r: r["policy"]["name"] == "healthcare"),
    ("--policy-sha", "1111", lambda r: r["policy"]["sha256"].startswith("1111")),
    ("--model", "gpt-4o", lambda r: r["model"] == "gpt-4o"),
    ("--status", "blocked", lambda r: r["status"] == "blocked"),
    ("--principal", f"key:b{1:023d}", lambda r: r["principal"] == f"key:b{1:023d}"),
])
def test_each_query_filter_selects_exactly_the_matching_records(
        url: str, option: str, value: str, check: object) -> None:
    got = [json.loads(line)["request_id"] for line in
           run("query", "--sink", url, option, value, "--format", "jsonl").splitlines()]
    want = [r["request_id"] for r in (record(i) for i in range(40)) if check(r)]  # type: ignore[operator]
    assert got == want and got


def test_query_table_shows_the_newest_first_and_says_how_many(url: str) -> None:
    output = run("query", "--sink", url, "--decision", "block", "--limit", "3")

    assert "req-00039" in output and "req-00035" in output and "req-00031" in output
    assert "req-00027" not in output
    assert "3 of 10 matching records" in output


def test_query_csv_has_one_row_per_record(url: str) -> None:
    rows = list(csv.DictReader(io.StringIO(run("query", "--sink", url, "--format", "csv"))))

    assert len(rows) == 40
    assert rows[1]["input_entities"] == "EMAIL_ADDRESS=2;PERSON=1"


def test_relative_times_are_understood(url: str) -> None:
    assert run("query", "--sink", url, "--since", "1d", "--format", "jsonl") == ""  # all in 2025
    assert len(run("query", "--sink", url, "--until", "1d", "--format", "jsonl").splitlines()) == 40


def test_stats_count_decisions_entities_categories_rules_principals_and_days(url: str) -> None:
    stats = json.loads(run("stats", "--sink", url, "--format", "json"))

    assert stats["requests"] == 40
    assert stats["decisions"] == {"allow": 10, "redact": 10, "warn": 10, "block": 10}
    assert stats["entities"]["EMAIL_ADDRESS"] == {"requests": 10, "occurrences": 20}
    assert stats["entities"]["US_SSN"] == {"requests": 10, "occurrences": 10}
    assert stats["categories"] == {"violence": 6}
    assert stats["rules"] == {"competitors": {"warn": 10}}
    assert sum(p["requests"] for p in stats["principals"]) == 40
    assert sum(p["prompt_tokens"] for p in stats["principals"]) == 4000
    assert [(d["day"], d["requests"]) for d in stats["days"]] == [("2025-06-01", 24),
                                                                   ("2025-06-02", 16)]
    assert sum(d["cost_usd"] for d in stats["days"]) == pytest.approx(40 * 0.000045)
    table = run("stats", "--sink", url)
    for title in ("Decisions", "Entity types", "Moderation categories", "Rules",
                  "By principal", "By day"):
        assert title in table


def test_verify_passes_then_names_the_hand_edited_row_and_exits_1(url: str) -> None:
    assert "OK" in run("verify", "--sink", url)
    (row_id,) = raw(url, "SELECT id FROM guard_requests WHERE request_id = 'req-00007'")[0]
    raw(url, "UPDATE guard_requests SET principal = 'key:someone-else' WHERE id = ?", (row_id,))

    output = run("verify", "--sink", url, code=1)

    assert f"row {row_id}" in output and "EDITED" in output and "principal" in output
    report = json.loads(run("verify", "--sink", url, "--format", "json", code=1))
    assert report["first_problem"]["row_id"] == row_id


def test_export_writes_a_manifest_that_verify_checks(url: str, tmp_path: Path) -> None:
    out = tmp_path / "export.jsonl"
    run("export", "--sink", url, "--since", "2025-06-02", "--until", "2025-06-03", "--out", str(out))
    manifest = json.loads((tmp_path / "export.jsonl.manifest.json").read_text())

    assert manifest["requests"] == 16
    assert manifest["file"] == "export.jsonl" and len(manifest["sha256"]) == 64
    assert manifest["chains"][0]["last_hash"]
    manifest_path = str(tmp_path / "export.jsonl.manifest.json")
    assert "OK" in run("verify", "--sink", f"jsonl://{out}", "--manifest", manifest_path)

    out.write_text(out.read_text().replace('"decision":"allow"', '"decision":"block"', 1))
    output = run("verify", "--sink", f"jsonl://{out}", "--manifest", manifest_path, code=1)
    assert "differs from the manifest" in output


def test_export_csv(url: str, tmp_path: Path) -> None:
    out = tmp_path / "export.csv"
    run("export", "--sink", url, "--format", "csv", "--out", str(out))
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert sum(1 for r in rows if r["event"] == "guard.request") == 40


def test_purge_deletes_old_records_and_verify_accepts_the_explained_gap(url: str) -> None:
    output = run("purge", "--sink", url, "--before", "2025-06-02", "--yes")

    assert "purged" in output
    assert "OK" in run("verify", "--sink", url)
    remaining = [json.loads(line) for line in
                 run("query", "--sink", url, "--format", "jsonl").splitlines()]
    assert [r["request_id"] for r in remaining] == [f"req-{i:05d}" for i in range(24, 40)]
    purges = [json.loads(line) for line in run("tail", "--sink", url, "-n", "50", "--no-follow",
                                               "--format", "jsonl").splitlines()
              if '"guard.audit.purge"' in line]
    assert len(purges) == 1 and purges[0]["deleted"] > 0


def test_purge_asks_before_deleting(url: str) -> None:
    result = CliRunner().invoke(audit, ["purge", "--sink", url, "--before", "2025-06-03"],
                                input="n\n")
    assert result.exit_code == 1
    assert "Delete about" in result.output
    assert len(raw(url, "SELECT id FROM guard_requests")) == 42


def test_tail_prints_the_newest_records(url: str) -> None:
    output = run("tail", "--sink", url, "-n", "2", "--no-follow")
    assert "req-00039" in output and "chain_end" in output and "req-00038" not in output


@pytest.mark.parametrize(("args", "message"), [
    (["query", "--sink", "kafka://broker/x"], "cannot be read back"),
    (["stats", "--sink", "sqlite:///does/not/exist.db"], "no audit store at"),
    (["verify", "--sink", "postgresql://guard:pw@127.0.0.1:1/audit"], "cannot connect"),
    (["purge", "--sink", "jsonl://x.jsonl", "--before", "1d", "--yes"], "cannot be changed"),
])
def test_mistakes_end_with_one_error_line_and_no_traceback(args: list[str], message: str) -> None:
    result = CliRunner().invoke(audit, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert "pw@" not in result.output  # never the password


def test_a_bad_date_is_a_usage_error(url: str) -> None:
    result = CliRunner().invoke(audit, ["query", "--sink", url, "--since", "last tuesday"])
    assert result.exit_code == 2
    assert "is not a time" in result.output
