"""`guard batch redact | restore` as a user runs them (the installed entry point), with the
redacted file sent through a real batch on the fake upstream in between."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from openai import OpenAI

from guard.offline import offline_embeddings
from guard.testing import FakeUpstream
from tests.support.batch import SSN, batch_case, echo, response_echo
from tests.support.sdk import assert_no_pii

GUARD = shutil.which("guard", path=str(Path(sys.executable).parent)) or "guard"
KEY = "cli-batch-key-0123456789abcdef"


def guard_batch(*args: str, cwd: Path, key: str | None = KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "GUARD_UPSTREAM_URL", "GUARD_BATCH_KEY",
                        "GUARD_BATCH_KEY_FILE", "GUARD_POLICY")}
    env["GUARD_AUDIT"] = f"jsonl://{cwd / 'audit.jsonl'}"
    if key is not None:
        env["GUARD_BATCH_KEY"] = key
    return subprocess.run([GUARD, "batch", *args], capture_output=True, text=True, timeout=900,
                          cwd=cwd, env=env)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_thousand_line_batch_round_trip_through_the_cli(tmp_path: Path) -> None:
    case = batch_case(1000)
    (tmp_path / "requests.jsonl").write_text("\n".join(case.lines) + "\n")

    redacted = guard_batch("redact", "requests.jsonl", "-o", "upload.jsonl", cwd=tmp_path)
    assert redacted.returncode == 0, redacted.stderr
    assert "1000" in redacted.stderr and "guard.unsupported_url" in redacted.stderr
    upload = (tmp_path / "upload.jsonl").read_bytes()
    report = read_jsonl(tmp_path / "upload.report.jsonl")
    maps_bytes = (tmp_path / "upload.maps").read_bytes()
    assert len(report) == 1000 and [r["line"] for r in report] == list(range(1, 1001))
    assert {r["custom_id"]: r["code"] for r in report if r["code"]} == case.blocked
    assert all(r["entities"]["EMAIL_ADDRESS"] == 1 for r in report if r["decision"] == "redact")

    with FakeUpstream() as upstream:  # the Batch API, hours later
        client = OpenAI(base_url=upstream.base_url, api_key="sk-test", max_retries=0)
        uploaded = client.files.create(file=("upload.jsonl", upload), purpose="batch")
        batch = client.batches.create(input_file_id=uploaded.id, completion_window="24h",
                                      endpoint="/v1/chat/completions")
        output = client.batches.retrieve(batch.id).output_file_id
        assert output is not None
        (tmp_path / "results.jsonl").write_bytes(client.files.content(output).content)
        received = upstream.files[uploaded.id].content.decode()

    sent = {line["custom_id"]: line for line in map(json.loads, received.splitlines())}
    assert set(sent) == case.answered, "withheld lines are not uploaded"
    assert {sent[c]["url"] for c in case.responses} == {"/v1/responses"}
    upstream_results = {r["custom_id"]: r for r in read_jsonl(tmp_path / "results.jsonl")}
    assert set(upstream_results) == case.answered

    restored = guard_batch("restore", "results.jsonl", "--maps", "upload.maps",
                           "-o", "answers.jsonl", cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    answers = {a["custom_id"]: a for a in read_jsonl(tmp_path / "answers.jsonl")}
    assert set(answers) == case.answered | set(case.blocked)
    for custom_id, text in case.texts.items():
        assert answers[custom_id]["response"]["body"]["choices"][0]["message"]["content"] == \
            echo(text)
    for custom_id, text in case.responses.items():
        (item,) = answers[custom_id]["response"]["body"]["output"]
        assert item["content"][0]["text"] == response_echo(text)
    for custom_id in case.embeddings:  # vectors of the redacted texts, passed on untouched
        body = answers[custom_id]["response"]["body"]
        assert body == upstream_results[custom_id]["response"]["body"]
        assert body == offline_embeddings(sent[custom_id]["body"])
    for custom_id, code in case.blocked.items():
        assert answers[custom_id]["error"]["code"] == code

    audit = read_jsonl(tmp_path / "audit.jsonl")
    restore_report = (tmp_path / "answers.report.jsonl").read_text()
    assert_no_pii(received, report, restore_report, audit, redacted.stdout, redacted.stderr,
                  restored.stderr, values=case.pii)
    assert not any(value.encode() in maps_bytes for value in case.pii)
    records = [r for r in audit if r.get("event") == "guard.request"]
    refs = {r["batch"]["ref"] for r in records}
    assert len(refs) == 1 and refs.pop() in redacted.stderr
    request_ids = {r["request_id"]: r for r in records}
    for row in report:  # the report points at each line's audit record
        record = request_ids[row["request_id"]]
        assert record["batch"] == {"ref": record["batch"]["ref"], "phase": "request",
                                   "line": row["line"]}
        assert record["decision"] == row["decision"]
    results = [r for r in records if r["batch"]["phase"] == "result"]
    assert len(results) == len(case.answered)
    assert all(r["decision"] == "allow" for r in results)


def test_without_a_key_redact_refuses_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(batch_case(3).lines[0] + "\n")
    result = guard_batch("redact", "in.jsonl", "-o", "out.jsonl", cwd=tmp_path, key=None)
    assert result.returncode == 2
    assert "No batch key: set GUARD_BATCH_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_a_wrong_key_fails_clearly_and_writes_nothing(tmp_path: Path) -> None:
    case = batch_case(2)
    (tmp_path / "in.jsonl").write_text("\n".join(case.lines) + "\n")
    assert guard_batch("redact", "in.jsonl", "-o", "out.jsonl", cwd=tmp_path).returncode == 0
    (tmp_path / "results.jsonl").write_text("")
    result = guard_batch("restore", "results.jsonl", "--maps", "out.maps", "-o", "answers.jsonl",
                         cwd=tmp_path, key="not-the-key-it-was-written-with")
    assert result.returncode == 2
    assert "out.maps could not be decrypted" in result.stderr
    assert "GUARD_BATCH_KEY" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "answers.jsonl").exists()


def test_bad_lines_are_listed_with_their_numbers_and_nothing_is_written(tmp_path: Path) -> None:
    good = batch_case(1).lines[0]
    lines = [good, "", "{not json", json.dumps({"custom_id": "x", "method": "POST",
                                                 "url": "chat", "body": f"SSN {SSN}"}),
             json.dumps(["a list"])]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    result = guard_batch("redact", "in.jsonl", "-o", "out.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    for expected in ("line 3: not valid JSON", "line 4: 'url' must be an API path",
                     "line 4: 'body' must be a JSON object", "line 5: must be a JSON object"):
        assert expected in result.stderr
    assert SSN not in result.stderr
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.maps").exists()
