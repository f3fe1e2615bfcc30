"""``guard.wrap(client)`` over real HTTP on loopback, with the official OpenAI SDK.

Every test asserts on what the fake upstream received and on the audit records.
"""

from __future__ import annotations

import json
import socket

import openai
import pytest

import guard as guard_pkg
from guard import Guard, MemorySink
from guard.sdk import set_default_guard
from guard.sdk.transport import SyncGuardTransport
from tests.conftest import GuardFactory
from tests.support.sdk import (
    HISTORY,
    SdkUpstream,
    assert_no_pii,
    records,
    reply_with,
)

KEY = "sk-client-key-123"


def sync_client(upstream: SdkUpstream, **kwargs: object) -> openai.OpenAI:
    kwargs.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=upstream.base_url, api_key=KEY, timeout=20, **kwargs)  # type: ignore[arg-type]


def test_wrapped_sync_client_redacts_before_send_and_restores_after(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    with guard.wrap(sync_client(upstream)) as client:
        result = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HISTORY)
    completion = result.parse()
    sent = upstream.chat_requests[-1].body["messages"]
    assert sent[0]["content"] == "Hi, I'm <PERSON_1>, mail <EMAIL_ADDRESS_1>."
    assert sent[2]["content"] == "Call me at <PHONE_NUMBER_1> or mail <EMAIL_ADDRESS_1>."
    assert (completion.choices[0].message.content or "").endswith(
        "Call me at (415) 555-0132 or mail maria.gonzalez@example.org.")
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    assert result.headers["x-guard-decision"] == "redact"
    (record,) = records(guard, sink)
    assert record["request_id"] == result.headers["x-guard-request-id"]
    assert record["route"] == "/v1/chat/completions"
    assert record["input_entities"] == {"PERSON": 1, "EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1}
    assert record["principal"].startswith("key:") and record["status"] == "ok"
    assert record["usage"]["prompt_tokens"] > 0 and record["cost_usd"] > 0
    assert "context" not in record
    assert_no_pii(record, [r.body for r in upstream.requests])


async def test_wrapped_async_client_redacts_before_send_and_restores_after(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    plain = openai.AsyncOpenAI(base_url=upstream.base_url, api_key=KEY, max_retries=0)
    async with guard.wrap(plain) as client:
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=HISTORY)
    assert (completion.choices[0].message.content or "").endswith(
        "Call me at (415) 555-0132 or mail maria.gonzalez@example.org.")
    assert upstream.chat_requests[-1].body["messages"][0]["content"] == (
        "Hi, I'm <PERSON_1>, mail <EMAIL_ADDRESS_1>.")
    (record,) = records(guard, sink)
    assert record["decision"] == "redact"
    assert_no_pii(record, [r.body for r in upstream.requests])


def test_flagged_prompt_raises_bad_request_and_is_never_retried(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    with guard.wrap(sync_client(upstream, max_retries=2)) as client, \
            pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "how to kill my boss"}])
    assert info.value.code == "guard.moderation"
    assert info.value.status_code == 400
    assert info.value.response.headers["x-guard-decision"] == "block"
    assert upstream.chat_requests == [], "a blocked prompt never reaches the model"
    (record,) = records(guard, sink)
    assert record["decision"] == "block" and record["status"] == "blocked"
    assert record["moderation"]["input"]["flagged"] == ["violence"]


def test_blocked_pii_entity_raises_bad_request_with_guard_pii(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    with guard.wrap(sync_client(upstream)) as client, \
            pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "SSN 536-22-7614"}])
    assert info.value.code == "guard.pii"
    assert upstream.chat_requests == []
    assert_no_pii(records(guard, sink), values=["536-22-7614"])


def test_moderation_outage_gets_503_and_is_never_retried(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    upstream.moderation_status = 500
    with guard.wrap(sync_client(upstream, max_retries=2)) as client, \
            pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 503 and info.value.code == "guard.moderation_unavailable"
    assert upstream.chat_requests == []
    (record,) = records(guard, sink)
    assert record["moderation"]["input"]["error"] == "http_500"


def test_sdk_retries_pass_through_once_per_attempt_without_double_redaction(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    upstream.fail_next = 1
    with guard.wrap(sync_client(upstream, max_retries=2)) as client:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=HISTORY)
    assert "maria.gonzalez@example.org" in (completion.choices[0].message.content or "")
    first, second = upstream.chat_requests
    assert first.body == second.body, "each attempt is redacted once, from the original body"
    assert first.body["messages"][0]["content"] == "Hi, I'm <PERSON_1>, mail <EMAIL_ADDRESS_1>."
    assert [r.headers["x-stainless-retry-count"] for r in (first, second)] == ["0", "1"]
    failed, ok = records(guard, sink, at_least=2)
    assert (failed["status"], failed["error"]) == ("upstream_error", "http_500")
    assert (ok["status"], ok["error"]) == ("ok", None)
    assert failed["request_id"] != ok["request_id"]
    assert_no_pii(failed, ok, [r.body for r in upstream.requests])


async def test_async_retries_pass_through_once_per_attempt(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    upstream.fail_next = 2
    plain = openai.AsyncOpenAI(base_url=upstream.base_url, api_key=KEY, max_retries=2)
    async with guard.wrap(plain) as client:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HISTORY)
    bodies = [r.body for r in upstream.chat_requests]
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]
    assert [r["status"] for r in records(guard, sink, at_least=3)] == [
        "upstream_error", "upstream_error", "ok"]


def test_upstream_errors_reach_the_sdk_with_status_and_body(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    upstream.status = 429
    upstream.error_body = {"error": {"message": "Rate limit reached", "type": "requests",
                                     "param": None, "code": "rate_limit_exceeded"}}
    with guard.wrap(sync_client(upstream)) as client, \
            pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["x-guard-decision"] == "allow"
    (record,) = records(guard, sink)
    assert (record["status"], record["error"]) == ("upstream_error", "http_429")


def test_unreachable_upstream_raises_connection_error_and_records_it(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    # Moderation would fail against the closed port too: check only the upstream leg here.
    with guard.wrap(openai.OpenAI(base_url=closed, api_key=KEY, max_retries=1)) as client, \
            guard.context(policy=_no_moderation_policy()), \
            pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    attempts = records(guard, sink, at_least=2)
    assert [(r["status"], r["error"]) for r in attempts] == [
        ("upstream_error", "ConnectError")] * 2


def test_other_endpoints_pass_through_untouched(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    with guard.wrap(sync_client(upstream)) as client:
        models = client.models.list()
    assert "gpt-4o-mini" in [m.id for m in models.data]
    assert records(guard, sink) == []


def test_client_settings_are_kept_and_with_options_copies_stay_guarded(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    plain = openai.OpenAI(base_url=upstream.base_url, api_key=KEY, timeout=7, max_retries=0,
                          default_headers={"x-team": "support"}, organization="org-1")
    client = guard.wrap(plain)
    assert (client.timeout, client.max_retries, str(client.base_url)) == (
        7, 0, str(plain.base_url))
    faster = client.with_options(timeout=5)
    faster.chat.completions.create(model="gpt-4o-mini", messages=HISTORY)
    received = upstream.chat_requests[-1]
    assert received.headers["x-team"] == "support"
    assert received.headers["openai-organization"] == "org-1"
    assert float(received.headers["x-stainless-read-timeout"]) == 5
    assert_no_pii(received.body)
    # The original client is not changed by wrapping it.
    plain.chat.completions.create(model="gpt-4o-mini", messages=HISTORY)
    assert "Maria Gonzalez" in json.dumps(upstream.chat_requests[-1].body)
    assert len(records(guard, sink)) == 1
    client.close()


def test_wrapping_a_wrapped_client_guards_once(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    with guard.wrap(guard.wrap(sync_client(upstream))) as client:
        assert isinstance(client._client._transport, SyncGuardTransport)
        assert not isinstance(client._client._transport.inner, SyncGuardTransport)
        client.chat.completions.create(model="gpt-4o-mini", messages=HISTORY)
    assert len(records(guard, sink)) == 1


def test_azure_client_is_guarded_and_keyed_by_its_api_key_header(
        make_guard: GuardFactory, upstream: SdkUpstream) -> None:
    guard, sink = make_guard(upstream_url=upstream.base_url)  # no moderation: Azure has none
    azure = openai.AzureOpenAI(azure_endpoint=upstream.base_url.removesuffix("/v1"),
                               api_key="azure-key", api_version="2024-10-21", max_retries=0)
    with guard.wrap(azure) as client:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=HISTORY)
    received = upstream.chat_requests[-1]
    assert received.path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert received.headers["api-key"] == "azure-key"
    assert_no_pii(received.body)
    assert "maria.gonzalez@example.org" in (completion.choices[0].message.content or "")
    (record,) = records(guard, sink)
    assert record["route"] == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert record["principal"].startswith("key:")


def test_moderation_goes_to_the_clients_base_url_with_its_key(
        make_guard: GuardFactory, upstream: SdkUpstream) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        elsewhere = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    guard, sink = make_guard(moderation_provider=None, upstream_url=elsewhere,
                             api_key="sk-server-key")
    with guard.wrap(sync_client(upstream)) as client:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}])
    (moderation,) = [r for r in upstream.requests if r.path.endswith("/moderations")]
    assert moderation.headers["authorization"] == f"Bearer {KEY}"
    (record,) = records(guard, sink)
    assert record["moderation"]["input"]["outcome"] == "pass"


def test_policy_override_per_wrapped_client(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    card = "4111 1111 1111 1111"
    message = [{"role": "user", "content": f"My card is {card}"}]
    with guard.wrap(sync_client(upstream), policy="payments") as payments, \
            pytest.raises(openai.BadRequestError) as info:
        payments.chat.completions.create(model="gpt-4o-mini", messages=message)
    assert info.value.code == "guard.pii"
    with guard.wrap(sync_client(upstream)) as default:
        default.chat.completions.create(model="gpt-4o-mini", messages=message)
    blocked, redacted = records(guard, sink, at_least=2)
    assert (blocked["policy"]["name"], blocked["decision"]) == ("payments", "block")
    assert (redacted["policy"]["name"], redacted["decision"]) == ("default", "redact")
    assert_no_pii(blocked, redacted, [r.body for r in upstream.requests], values=[card])


def test_output_rule_block_yields_content_filter(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    upstream.reply = reply_with("Sure: 5500 0000 0000 0004 exp 12/29")
    with guard.wrap(sync_client(upstream)) as client:
        choice = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "any card?"}]).choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.content == "The answer contained payment data and was withheld."
    (record,) = records(guard, sink)
    assert record["output_rules"] == [{"id": "no-payment-data", "action": "block"}]
    assert "5500" not in json.dumps(record)


def test_module_level_wrap_uses_the_default_guard_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, upstream: SdkUpstream) -> None:
    from guard.audit.sinks import named_memory_sink

    monkeypatch.setenv("GUARD_AUDIT", "memory://sdk-default")
    monkeypatch.setenv("GUARD_UPSTREAM_URL", "http://127.0.0.1:9/v1")  # never used: see below
    previous = set_default_guard(None)
    try:
        with guard_pkg.wrap(sync_client(upstream)) as client:
            completion = client.chat.completions.create(model="gpt-4o-mini", messages=HISTORY)
        default = guard_pkg.sdk.default_guard()
        default.audit_writer.flush()
        (record,) = named_memory_sink("sdk-default").records
    finally:
        built = set_default_guard(previous)
        if built is not None:
            built.close()
        named_memory_sink("sdk-default").clear()
    assert "maria.gonzalez@example.org" in (completion.choices[0].message.content or "")
    assert_no_pii(record, [r.body for r in upstream.requests])
    # Moderation went to the client's base URL, not to GUARD_UPSTREAM_URL.
    assert record["moderation"]["input"]["outcome"] == "pass"
    assert any(r.path == "/v1/moderations" for r in upstream.requests)


def _no_moderation_policy() -> guard_pkg.Policy:
    return guard_pkg.parse_policy(
        "version: 1\nname: no-moderation\nmoderation: {input: {provider: none}}\n",
        source="test.yaml")


def test_monitor_mode_alters_nothing_and_records_what_it_would_do(
        make_guard: GuardFactory, upstream: SdkUpstream) -> None:
    guard, sink = make_guard("version: 1\nname: watch\nmode: monitor\n"
                             "moderation: {input: {provider: none}}\n")
    with guard.wrap(sync_client(upstream)) as client:
        result = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HISTORY)
    assert "Maria Gonzalez" in json.dumps(upstream.chat_requests[-1].body)
    assert result.headers["x-guard-mode"] == "monitor"
    (record,) = records(guard, sink)
    assert (record["mode"], record["decision"]) == ("monitor", "redact")
    assert_no_pii(record)
