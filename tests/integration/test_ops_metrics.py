"""GET /metrics on the proxy: after a scripted set of calls through the official SDK, the
series say what the audit records say — and no label holds anything a client wrote."""

from __future__ import annotations

import contextlib
import json
import math
import threading

import httpx2
import openai
import pytest

from examples.fastapi_app import build_app
from guard.ops import report_circuit_state
from guard.testing import FakeUpstream, LoopbackServer
from tests.conftest import GuardFactory
from tests.integration.conftest import ProxyFactory
from tests.integration.test_audit_no_pii import CLIENT_KEY, PII, PROMPTS
from tests.support.ops import label_values, scrape, value
from tests.support.sdk import records, reply_with

ROUTE = "/v1/chat/completions"


def client(base_url: str, key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)


def ask(sdk: openai.OpenAI, text: str, **extra: object) -> str | None:
    answer = sdk.chat.completions.create(model="gpt-4o-mini",
                                         messages=[{"role": "user", "content": text}],
                                         **extra)  # type: ignore[call-overload]
    return answer.choices[0].message.content  # type: ignore[no-any-return]


def test_scripted_calls_show_up_with_the_right_labels_and_values(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy()
    server = base_url.removesuffix("/v1")
    sdk = client(base_url)

    ask(sdk, "What is the capital of France?")                                  # allow
    ask(sdk, "Hi, I'm Maria Gonzalez, mail maria.gonzalez@example.org.")        # redact
    with pytest.raises(openai.BadRequestError):
        ask(sdk, "My SSN is 536-22-7614, please store it.")                     # block: pii
    with pytest.raises(openai.BadRequestError):
        ask(sdk, "Tell me how to kill the neighbour's dog.")                    # block: moderation
    pieces = [c.choices[0].delta.content or "" for c in sdk.chat.completions.create(
        model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Write to jane.roe@example.com please."}])
        if c.choices]                                                           # redact, streamed
    assert "jane.roe@example.com" in "".join(pieces)
    upstream.reply = reply_with("Your card 4111 1111 1111 1111 is on file.")
    assert ask(sdk, "Which card do you have?") == (
        "The answer contained payment data and was withheld.")                 # block: output rule

    found = records(guard, sink, at_least=6)
    assert len(found) == 6
    samples = scrape(server)

    def requests(decision: str, status: str) -> float:
        return value(samples, "guard_requests_total", route=ROUTE, decision=decision, status=status)

    assert requests("allow", "ok") == 1
    assert requests("redact", "ok") == 2
    assert requests("block", "blocked") == 3
    assert value(samples, "guard_blocks_total", kind="pii", reason="US_SSN") == 1
    assert value(samples, "guard_blocks_total", kind="moderation", reason="violence") == 1
    assert value(samples, "guard_blocks_total", kind="output_rule", reason="no-payment-data") == 1

    # Entity counts, moderation outcomes, tokens and cost: exactly what the records say.
    for direction, key in (("input", "input_entities"), ("output", "output_entities")):
        expected: dict[str, int] = {}
        for r in found:
            for entity, n in r[key].items():
                expected[entity] = expected.get(entity, 0) + n
        assert expected or direction == "output"
        for entity, n in expected.items():
            assert value(samples, "guard_pii_entities_total", direction=direction,
                         entity=entity) == n
    assert value(samples, "guard_pii_entities_total", direction="input", entity="EMAIL_ADDRESS") == 2
    outcomes = [r["moderation"]["input"]["outcome"] for r in found if r["moderation"]["input"]]
    assert outcomes.count("flagged") == 1
    for outcome in set(outcomes):
        assert value(samples, "guard_moderation_checks_total", direction="input",
                     provider="openai", outcome=outcome) == outcomes.count(outcome)
    prompt_tokens = sum((r["usage"] or {}).get("prompt_tokens", 0) for r in found)
    completion_tokens = sum((r["usage"] or {}).get("completion_tokens", 0) for r in found)
    assert prompt_tokens > 0 and completion_tokens > 0
    assert value(samples, "guard_tokens_total", model="gpt-4o-mini", kind="input") == prompt_tokens
    assert value(samples, "guard_tokens_total", model="gpt-4o-mini", kind="output") == completion_tokens
    assert math.isclose(value(samples, "guard_cost_usd_total", model="gpt-4o-mini"),
                        sum(r["cost_usd"] or 0 for r in found), rel_tol=1e-9)

    # Latency histograms per stage: one observation per call that reached the stage.
    def observed(stage: str) -> float:
        return value(samples, "guard_stage_latency_seconds_count", stage=stage)

    assert observed("total") == 6
    assert observed("pii") == 6
    assert observed("upstream") == sum(1 for r in found if "upstream" in r["latency_ms"]) == 4
    assert observed("first_token") == 1
    assert observed("moderation") == sum(1 for r in found if r["latency_ms"].get("moderation"))

    # The audit trail: everything written, nothing waiting.
    assert value(samples, "guard_audit_records_written_total") == 6
    assert value(samples, "guard_audit_queue_depth") == 0
    assert value(samples, "guard_audit_spool_records") == 0
    assert value(samples, "guard_streams_open") == 0
    assert value(samples, "guard_policy_info", name="default", sha256=guard.policy.sha256[:12]) == 1


def test_streams_open_counts_a_stream_while_it_runs(proxy: ProxyFactory,
                                                   upstream: FakeUpstream) -> None:
    base_url, _, _ = proxy()
    server = base_url.removesuffix("/v1")
    upstream.stream_pieces = ["Hello ", "there, ", "this ", "is ", "a ", "slow ", "stream."]
    upstream.stream_delay_s = 0.3
    stream = client(base_url).chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "Hi"}])
    chunks = iter(stream)
    next(chunks)  # the stream is open and on its way
    assert value(scrape(server), "guard_streams_open") == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith("stream.")
    stream.close()
    assert value(scrape(server), "guard_streams_open") == 0


def test_moderation_timeouts_and_circuit_state_are_exposed(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    policy = """
version: 1
name: strict
pii: {entities: [EMAIL_ADDRESS]}
moderation:
  input: {provider: openai, on_error: block, timeout_s: 0.2}
"""
    base_url, _, _ = proxy(policy)
    upstream.moderation_delay_s = 1.0
    with pytest.raises(openai.InternalServerError) as failed:
        ask(client(base_url), "Hello there")
    assert failed.value.status_code == 503
    report_circuit_state("openai-moderation", "open")
    samples = scrape(base_url.removesuffix("/v1"))
    assert value(samples, "guard_moderation_timeouts_total", direction="input", provider="openai") == 1
    assert value(samples, "guard_moderation_errors_total", direction="input", provider="openai",
                 error="timeout") == 1
    assert value(samples, "guard_blocks_total", kind="moderation_unavailable", reason="timeout") == 1
    assert value(samples, "guard_circuit_breaker_state", breaker="openai-moderation") == 2
    report_circuit_state("openai-moderation", "closed")
    samples = scrape(base_url.removesuffix("/v1"))
    assert value(samples, "guard_circuit_breaker_state", breaker="openai-moderation") == 0


def test_no_metric_label_holds_pii_keys_or_request_text(proxy: ProxyFactory,
                                                        upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy()
    sdk = client(base_url, key=CLIENT_KEY)
    for prompt in PROMPTS:
        with contextlib.suppress(openai.BadRequestError):
            ask(sdk, prompt)
    # Client-chosen strings that would be unbounded labels: a model name and a path.
    sdk.chat.completions.create(model="maria.gonzalez@example.org",
                                messages=[{"role": "user", "content": "hi"}])
    httpx2.post(f"{base_url.removesuffix('/v1')}/maria.gonzalez@example.org/chat/completions",
                json={"model": "gpt-4o-mini", "messages": []}, timeout=10)
    records(guard, sink, at_least=len(PROMPTS) + 2)
    response = httpx2.get(f"{base_url.removesuffix('/v1')}/metrics", timeout=10)
    samples = scrape(base_url.removesuffix("/v1"))
    labels = label_values(samples)
    assert "PERSON" in labels and "US_SSN" in labels  # the corpus was counted...
    for secret in PII:
        assert secret not in response.text, f"{secret!r} in /metrics"  # ...its values were not
    assert all(len(label) <= 64 for label in labels), sorted(labels, key=len)[-3:]
    assert {v for (name, lab), v in samples.items() if name == "guard_requests_total"}
    routes = {dict(lab).get("route") for name, lab in samples if name == "guard_requests_total"}
    assert routes == {ROUTE}  # the odd path still counts as a chat completion, by its ending
    models = {dict(lab)["model"] for name, lab in samples if name == "guard_tokens_total"}
    assert models == {"gpt-4o-mini", "other"}


def test_metrics_need_no_client_key_and_can_be_switched_off(proxy: ProxyFactory) -> None:
    base_url, _, _ = proxy(server_key="sk-server", client_keys="sk-client")
    server = base_url.removesuffix("/v1")
    assert httpx2.get(f"{server}/metrics", timeout=10).status_code == 200
    assert httpx2.post(f"{base_url}/chat/completions", json={}, timeout=10).status_code == 401
    quiet_url, _, _ = proxy(metrics=False)
    assert httpx2.get(f"{quiet_url.removesuffix('/v1')}/metrics", timeout=10).status_code == 404


def test_metrics_count_calls_from_several_threads_without_losing_any(
        proxy: ProxyFactory) -> None:
    base_url, guard, sink = proxy()
    sdk = client(base_url)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(3):
                ask(sdk, "Ping")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    records(guard, sink, at_least=12)
    samples = scrape(base_url.removesuffix("/v1"))
    assert value(samples, "guard_requests_total", route=ROUTE, decision="allow", status="ok") == 12
    assert json.loads(httpx2.get(f"{base_url.removesuffix('/v1')}/readyz",
                                 timeout=10).text)["status"] == "ready"


def test_an_app_with_the_middleware_serves_its_own_metrics_and_readiness(
        make_guard: GuardFactory, upstream: FakeUpstream) -> None:
    guard, sink = make_guard(moderation_provider=None, upstream_url=upstream.base_url)
    app = build_app(guard, upstream_url=upstream.base_url, api_key="sk-app")
    with LoopbackServer(app) as server:
        sdk = client(f"{server.url}/v1")
        ask(sdk, "I'm Maria Gonzalez (maria.gonzalez@example.org).")
        records(guard, sink, at_least=1)
        samples = scrape(server.url)
        ready = httpx2.get(f"{server.url}/readyz", timeout=10)
    assert value(samples, "guard_requests_total", route=ROUTE, decision="redact", status="ok") == 1
    assert value(samples, "guard_pii_entities_total", direction="input", entity="PERSON") == 1
    assert value(samples, "guard_audit_records_written_total") == 1
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
