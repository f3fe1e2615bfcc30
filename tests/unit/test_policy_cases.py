"""Every shipped policy's cases file passes — the same check `guard policy test` runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.cases import discover, run_policy_cases
from guard.policy import packaged_policies_dir

POLICIES = discover([packaged_policies_dir()])


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_every_case_of_the_shipped_policy_passes(path: Path) -> None:
    results = run_policy_cases(path)
    assert len(results) >= 10, "each shipped policy needs at least 10 cases"
    failures = [f"{r.name}: {'; '.join(r.problems)}" for r in results if not r.passed]
    assert failures == []


def test_a_wrong_expectation_is_reported_as_a_failed_case(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nname: p\nmoderation: {input: null}\n")
    policy.with_name("p.cases.yaml").write_text(
        "cases:\n"
        "  - name: email_is_redacted\n    input: 'Mail ann@example.com'\n"
        "    expect: {decision: redact, redacted: 'Mail <EMAIL_ADDRESS_1>'}\n"
        "  - name: wrongly_expects_allow\n    input: 'Mail ann@example.com'\n"
        "    expect: {decision: allow}\n"
    )
    results = {r.name: r for r in run_policy_cases(policy)}
    assert results["email_is_redacted"].passed
    assert not results["wrongly_expects_allow"].passed
    assert results["wrongly_expects_allow"].problems == ["decision: expected allow, got redact"]
