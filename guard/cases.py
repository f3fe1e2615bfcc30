"""Policy cases: ``NAME.cases.yaml`` beside ``NAME.yaml`` states inputs and expected verdicts.

Like ``opa test``: a policy is code, so it ships with tests that anyone can run with
``guard policy test``. Cases run offline: a policy's ``openai`` moderation is replaced by the
``local`` provider, and audit records go to memory.

A cases file::

    cases:
      - name: patient_name_is_pseudonymised
        input: "Summarise the chart of John Carter."      # or messages: [...]
        expect: {decision: redact, entities: {PERSON: 1},
                 redacted: "Summarise the chart of <PERSON_1>."}
      - name: card_number_in_answer_is_withheld
        output: "Your card 4111 1111 1111 1111 is on file."
        expect: {decision: block, rules: [no-payment-data]}
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from guard.audit import MemorySink
from guard.engine import Guard
from guard.errors import PolicyError
from guard.policy import Policy, load_policy
from guard.settings import Settings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expectation(_Strict):
    decision: Literal["allow", "redact", "warn", "block"]
    code: str | None = None
    entities: dict[str, int] | None = None
    redacted: str | None = None
    """The last message's text as sent upstream (input cases)."""
    rules: list[str] | None = None
    """Ids of the output rules that must fire, in any order (output cases)."""
    text: str | None = None
    """The answer's text as the client receives it (output cases)."""


class Case(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$")
    input: str | None = None
    messages: list[dict[str, Any]] | None = None
    output: str | None = None
    expect: Expectation

    @model_validator(mode="after")
    def _has_something(self) -> Case:
        if self.input is not None and self.messages is not None:
            raise ValueError("give either input or messages, not both")
        if self.input is None and self.messages is None and self.output is None:
            raise ValueError("a case needs input, messages or output")
        return self

    def request(self) -> dict[str, Any]:
        messages = self.messages or [{"role": "user", "content": self.input or "Hello."}]
        return {"model": "gpt-4o-mini", "messages": messages}


class CasesFile(_Strict):
    policy: str | None = None
    cases: list[Case] = Field(min_length=1)


class CaseResult(BaseModel):
    policy: str
    name: str
    passed: bool
    problems: list[str] = Field(default_factory=list)


def cases_path_for(policy_path: Path) -> Path:
    return policy_path.with_name(f"{policy_path.stem}.cases.yaml")


def discover(paths: list[Path]) -> list[Path]:
    """Policy files named by ``paths`` (files, or folders searched for ``*.yaml``)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.glob("*.yaml") if not p.name.endswith(".cases.yaml")))
        elif path.name.endswith(".cases.yaml"):
            found.append(path.with_name(path.name.removesuffix(".cases.yaml") + ".yaml"))
        else:
            found.append(path)
    return found


def load_cases(path: Path) -> CasesFile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return CasesFile.model_validate(data)
    except FileNotFoundError:
        raise PolicyError(str(path), [f"{path}: no cases file (every policy needs one)"]) from None
    except yaml.YAMLError as exc:
        raise PolicyError(str(path), [f"{path}: not valid YAML: {exc}"]) from None
    except ValidationError as exc:
        problems = [f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise PolicyError(str(path), problems) from None


def offline_guard(policy: Policy) -> Guard:
    """A guard for running cases: local moderation, audit in memory."""
    return Guard(policy, Settings.from_env(moderation_provider=_offline_provider(policy),
                                           upstream_url="http://127.0.0.1:9/v1"),
                 audit_sink=MemorySink())


def _offline_provider(policy: Policy) -> str | None:
    checks = [c for c in (policy.moderation.input, policy.moderation.output) if c is not None]
    return "local" if any(c.provider == "openai" for c in checks) else None


def run_policy_cases(policy_path: Path) -> list[CaseResult]:
    """Run every case of one policy; problems are reported per case, never raised."""
    policy = load_policy(policy_path)
    cases = load_cases(cases_path_for(policy_path))
    guard = offline_guard(policy)
    try:
        return asyncio.run(_run_cases(guard, cases.cases))
    finally:
        guard.close()


async def _run_cases(guard: Guard, cases: list[Case]) -> list[CaseResult]:
    return [await _run_case(guard, case) for case in cases]


async def _run_case(guard: Guard, case: Case) -> CaseResult:
    problems: list[str] = []
    expect = case.expect
    decision = "allow"
    async with guard.call(route="policy-test") as call:
        if case.input is not None or case.messages is not None:
            verdict = await call.check_request(case.request())
            decision = verdict.decision
            if expect.code is not None and verdict.code != expect.code:
                problems.append(f"code: expected {expect.code}, got {verdict.code}")
            if expect.entities is not None and dict(verdict.entities) != expect.entities:
                problems.append(f"entities: expected {expect.entities}, got {dict(verdict.entities)}")
            if expect.redacted is not None:
                sent = verdict.body["messages"][-1].get("content")
                if sent != expect.redacted:
                    problems.append(f"redacted: expected {expect.redacted!r}, got {sent!r}")
            if verdict.blocked:
                return _result(guard, case, decision, problems)
        if case.output is not None:
            answer = {
                "id": "chatcmpl-case", "object": "chat.completion", "model": "gpt-4o-mini",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": case.output}}],
            }
            out = await call.check_response(answer)
            decision = call.decision
            hit_ids = sorted({h.rule_id for h in out.rule_hits})
            if expect.rules is not None and hit_ids != sorted(expect.rules):
                problems.append(f"rules: expected {sorted(expect.rules)}, got {hit_ids}")
            if expect.text is not None:
                got = out.body["choices"][0]["message"].get("content")
                if got != expect.text:
                    problems.append(f"text: expected {expect.text!r}, got {got!r}")
    return _result(guard, case, decision, problems)


def _result(guard: Guard, case: Case, decision: str, problems: list[str]) -> CaseResult:
    if decision != case.expect.decision:
        problems.insert(0, f"decision: expected {case.expect.decision}, got {decision}")
    return CaseResult(policy=guard.policy.name, name=case.name, passed=not problems,
                      problems=problems)
