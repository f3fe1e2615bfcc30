"""``guard doctor``: every check passes on a healthy set-up and names the fix when one fails."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from guard import Guard
from guard.audit import open_sink
from guard.cli import main
from guard.doctor import Check, run_checks
from guard.pii import PiiDetector
from guard.testing import FakeUpstream
from tests.support.fake_moderation import closed_port


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def write_records(url: str, detector: PiiDetector, n: int = 3) -> None:
    guard = Guard.from_policy("default", detector=detector, audit_sink=open_sink(url),
                              moderation_provider="none", warm_up=False)
    for _ in range(n):
        with guard.call() as call:
            call.finish()
    guard.close()


def test_a_healthy_online_setup_passes_every_check(
        upstream: FakeUpstream, tmp_path: Path, detector: PiiDetector) -> None:
    url = f"sqlite:///{tmp_path}/audit.db"
    write_records(url, detector)
    checks = by_name(run_checks("default", {"GUARD_UPSTREAM_URL": upstream.base_url,
                                            "OPENAI_API_KEY": "sk-test", "GUARD_AUDIT": url}))
    assert all(c.ok for c in checks.values()), checks
    assert set(checks) == {"policy", "spaCy model", "moderation (input)", "audit store",
                           "audit chain", "clock"}
    assert "intact" in checks["audit chain"].detail
    assert upstream.requests[-1].path.endswith("/moderations")


def test_an_invalid_policy_fails_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: bad\npii:\n  action: obliterate\n")
    checks = by_name(run_checks(str(bad), {"GUARD_AUDIT": f"sqlite:///{tmp_path}/a.db"}))
    assert not checks["policy"].ok and "bad.yaml" in checks["policy"].detail
    assert "line 4" in checks["policy"].detail or ":4" in checks["policy"].detail
    assert not checks["moderation"].ok


def test_unreachable_moderation_fails_and_says_where(tmp_path: Path) -> None:
    env = {"GUARD_UPSTREAM_URL": f"http://127.0.0.1:{closed_port()}/v1",
           "OPENAI_API_KEY": "sk-test", "GUARD_AUDIT": f"sqlite:///{tmp_path}/a.db"}
    check = by_name(run_checks("default", env, timeout_s=1))["moderation (input)"]
    assert not check.ok and "unreachable" in check.detail and "base_url" in check.fix


def test_a_refused_server_key_fails(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.moderation_status = 401
    env = {"GUARD_UPSTREAM_URL": upstream.base_url, "OPENAI_API_KEY": "sk-wrong",
           "GUARD_AUDIT": f"sqlite:///{tmp_path}/a.db"}
    check = by_name(run_checks("default", env))["moderation (input)"]
    assert not check.ok and "OPENAI_API_KEY" in check.fix


def test_an_audit_folder_that_does_not_exist_fails(tmp_path: Path) -> None:
    checks = by_name(run_checks("default", {"GUARD_AUDIT": f"sqlite:///{tmp_path}/no/a.db"}))
    assert not checks["audit store"].ok and "mkdir" in checks["audit store"].fix
    assert "audit chain" not in checks  # nothing to verify in a store that cannot exist


def test_a_tampered_chain_fails_verification(tmp_path: Path, detector: PiiDetector) -> None:
    db = tmp_path / "audit.db"
    write_records(f"sqlite:///{db}", detector)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE guard_requests SET record = replace(record, '\"ok\"', '\"oops\"') "
                     "WHERE id = (SELECT min(id) FROM guard_requests WHERE record LIKE '%\"ok\"%')")
    check = by_name(run_checks("default", {"GUARD_AUDIT": f"sqlite:///{db}"}))["audit chain"]
    assert not check.ok and "broken" in check.detail


def test_the_command_exits_1_on_failure_and_0_when_healthy(tmp_path: Path) -> None:
    runner = CliRunner()
    healthy = runner.invoke(main, ["doctor"], env={
        "GUARD_AUDIT": f"sqlite:///{tmp_path}/a.db", "OPENAI_API_KEY": "", "GUARD_UPSTREAM_URL": ""})
    assert healthy.exit_code == 0, healthy.output
    assert "checks passed" in healthy.output
    broken = runner.invoke(main, ["doctor"], env={
        "GUARD_AUDIT": f"sqlite:///{tmp_path}/missing/a.db", "OPENAI_API_KEY": "",
        "GUARD_UPSTREAM_URL": ""})
    assert broken.exit_code == 1 and "FAIL" in broken.output and "mkdir" in broken.output
