"""The `guard` command as a user runs it (a real subprocess, the installed entry point)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

GUARD = shutil.which("guard", path=str(Path(sys.executable).parent)) or "guard"


def run(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GUARD, *args], input=stdin, capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_scan_redacts_name_email_phone_and_card_from_stdin(tmp_path: Path) -> None:
    text = ("Hi, I'm Jane Doe (jane.doe@example.com, +1 415 555 0100), "
            "card 4111 1111 1111 1111.\n")
    result = run("scan", stdin=text, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("Hi, I'm <PERSON_1> (<EMAIL_ADDRESS_1>, <PHONE_NUMBER_1>), "
                             "card <CREDIT_CARD_1>.\n")
    assert "EMAIL_ADDRESS" in result.stderr and "jane.doe" not in result.stderr
    assert not (tmp_path / "guard-audit.db").exists(), "scanning writes no audit trail"


def test_scan_json_reports_findings_without_values(tmp_path: Path) -> None:
    result = run("scan", "--format", "json", stdin="Mail ann@example.com", cwd=tmp_path)
    report = json.loads(result.stdout)
    assert report["decision"] == "redact" and report["redacted"] == "Mail <EMAIL_ADDRESS_1>"
    assert report["findings"][0] | {"score": 1} == {
        "start": 5, "end": 20, "label": "EMAIL_ADDRESS", "score": 1,
        "action": "pseudonymize", "replacement": "<EMAIL_ADDRESS_1>"}


def test_scan_spans_writes_one_list_per_input_line_in_order(tmp_path: Path) -> None:
    lines = [{"text": "Mail ann@example.com"}, {"text": "nothing here"}, {"text": "IP 10.1.2.3"}]
    result = run("scan", "--format", "spans",
                 stdin="".join(json.dumps(x) + "\n" for x in lines), cwd=tmp_path)
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 3
    assert [(s["start"], s["end"], s["label"]) for s in out[0]] == [(5, 20, "EMAIL_ADDRESS")]
    assert out[1] == []
    assert out[2][0]["label"] == "IP_ADDRESS"


def test_policy_check_names_file_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: bad\npii:\n  action: scramble\n")
    result = run("policy", "check", str(bad))
    assert result.returncode == 1
    assert f"{bad}:4: pii.action:" in result.stderr.replace("\n", "")


def test_policy_check_accepts_the_shipped_default() -> None:
    result = run("policy", "check", str(Path(__file__).parents[2] / "guard/policies/default.yaml"))
    assert result.returncode == 0, result.stderr


def test_policy_test_runs_all_shipped_policies(tmp_path: Path) -> None:
    result = run("policy", "test", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "0 failed" in result.stderr and "(3 policies)" in result.stderr


def test_demo_tells_the_whole_story_offline(tmp_path: Path) -> None:
    result = run("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for title in ("PII in a chat history", "A flagged prompt", "breaks an output rule",
                  "A tool call with an e-mail"):
        assert title in out
    assert "<EMAIL_ADDRESS_1>" in out and "guard.moderation" in out
    assert "[REDACTED:no-api-keys]" in out and "guard-demo.db" in out
    assert (tmp_path / "guard-demo.db").exists()
