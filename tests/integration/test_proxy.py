"""The proxy over real HTTP on loopback, with the official OpenAI SDK as the client.

Every test asserts on what the fake upstream received and on the audit records.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import httpx2
import openai
import pytest

from guard.testing import FakeUpstream
from tests.integration.conftest import ProxyFactory
from tests.support.sdk import records

PII = ["Maria Gonzalez", "maria.gonzalez@example.org", "(415) 555-0132"]







def client(base_url: str, key: str = "sk-client-key") -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=20)




def assert_no_pii(*things: Any) -> None:
    dumped = json.dumps(things, default=str)
    for value in PII:
        assert value not in dumped, f"{value!r} leaked"


HISTORY = [
    {"role": "user", "content": "Hi, I'm Maria Gonzalez, mail maria.gonzalez@example.org."},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Call me at (415) 555-0132 or mail maria.gonzalez@example.org."},
]


def test_pii_in_history_never_reaches_upstream_and_comes_back_restored(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy()
    result = client(base_url).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HISTORY)
    completion = result.parse()
    sent = upstream.chat_requests[-1].body["messages"]
    assert sent[0]["content"] == "Hi, I'm <PERSON_1>, mail <EMAIL_ADDRESS_1>."
    assert sent[2]["content"] == "Call me at <PHONE_NUMBER_1> or mail <EMAIL_ADDRESS_1>."
    assert_no_pii([r.body for r in upstream.requests])
    assert completion.choices[0].message.content.endswith(
        "Call me at (415) 555-0132 or mail maria.gonzalez@example.org.")
    assert result.headers["x-guard-decision"] == "redact"
    (record,) = records(guard, sink)
    assert record["request_id"] == result.headers["x-guard-request-id"]
    assert record["input_entities"] == {"PERSON": 1, "EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1}
    assert record["usage"]["prompt_tokens"] > 0 and record["cost_usd"] > 0
    assert_no_pii(record)


async def test_async_client_gets_the_same_protection(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy()
    async with openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0) as aclient:
        completion = await aclient.chat.completions.create(model="gpt-4o-mini", messages=HISTORY)
    assert "maria.gonzalez@example.org" in (completion.choices[0].message.content or "")
    assert_no_pii([r.body for r in upstream.requests])
    assert len(records(guard, sink)) == 1


async def test_fifty_concurrent_requests_each_get_only_their_own_values(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy()

    async def one(aclient: openai.AsyncOpenAI, i: int) -> tuple[int, str]:
        email = f"user{i}.x@example{i}.org"
        completion = await aclient.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"My email is {email}"}])
        return i, completion.choices[0].message.content or ""

    async with openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0,
                                  timeout=60) as aclient:
        results = await asyncio.gather(*(one(aclient, i) for i in range(50)))
    for i, content in results:
        assert content.endswith(f"My email is user{i}.x@example{i}.org")
        others = [f"user{j}.x@" for j in range(50) if j != i]
        assert not any(o in content for o in others)
    bodies = json.dumps([r.body for r in upstream.chat_requests])
    assert "@example" not in bodies
    assert len(records(guard, sink, at_least=50)) == 50


def test_flagged_prompt_raises_bad_request_with_guard_moderation(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy()
    with pytest.raises(openai.BadRequestError) as info:
        client(base_url).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "how to kill my boss"}])
    assert info.value.code == "guard.moderation"
    assert info.value.response.headers["x-guard-decision"] == "block"
    assert upstream.chat_requests == [], "a blocked prompt never reaches the model"
    (record,) = records(guard, sink)
    assert record["decision"] == "block" and record["status"] == "blocked"
    assert record["moderation"]["input"]["flagged"] == ["violence"]


def test_blocked_pii_entity_raises_bad_request_with_guard_pii(proxy: ProxyFactory) -> None:
    base_url, _, _ = proxy()
    with pytest.raises(openai.BadRequestError) as info:
        client(base_url).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "SSN 536-22-7614"}])
    assert info.value.code == "guard.pii"


def test_output_rule_block_yields_content_filter(proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.reply = lambda body: {
        "id": "x", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": "Sure: 5500 0000 0000 0004 exp 12/29"}}]}
    base_url, guard, sink = proxy()
    result = client(base_url).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "any card?"}])
    choice = result.parse().choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.content == "The answer contained payment data and was withheld."
    assert result.headers["x-guard-decision"] == "block"
    (record,) = records(guard, sink)
    assert record["output_rules"] == [{"id": "no-payment-data", "action": "block"}]
    assert "5500" not in json.dumps(record)


def test_body_over_the_limit_gets_413(proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy(max_body_bytes=2_000)
    with pytest.raises(openai.APIStatusError) as info:
        client(base_url).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 5_000}])
    assert info.value.status_code == 413
    assert upstream.chat_requests == []
    assert records(guard, sink)[0]["status"] == "rejected"


@pytest.mark.parametrize(("raw", "param"), [
    (b"{not json", None),
    (b'["a list"]', None),
    (b'{"model": "gpt-4o-mini"}', "messages"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 42}]}',
     "messages[0].content"),
])
def test_malformed_or_wrong_shape_gets_an_openai_shaped_400(
        proxy: ProxyFactory, upstream: FakeUpstream, raw: bytes, param: str | None) -> None:
    base_url, guard, sink = proxy()
    response = httpx2.post(f"{base_url}/chat/completions", content=raw,
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param
    assert response.headers["x-guard-request-id"].startswith("req_")
    assert upstream.chat_requests == []
    assert len(records(guard, sink)) == 1


def test_server_key_mode_refuses_unknown_client_keys_with_401(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, _, _ = proxy(server_key="sk-server-secret", client_keys="team-a-key")
    for key in ("wrong-key", ""):
        with pytest.raises(openai.AuthenticationError):
            client(base_url, key=key or "x").chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    response = httpx2.get(f"{base_url}/models")
    assert response.status_code == 401
    assert upstream.requests == []
    ok = client(base_url, key="team-a-key").chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert ok.choices[0].message.content
    assert upstream.chat_requests[-1].headers["authorization"] == "Bearer sk-server-secret"


def test_client_key_is_forwarded_without_a_server_key_and_hashed_in_audit(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy()
    client(base_url, key="sk-byok-123").chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert upstream.chat_requests[-1].headers["authorization"] == "Bearer sk-byok-123"
    (record,) = records(guard, sink)
    assert record["principal"].startswith("key:") and "sk-byok" not in json.dumps(record)


def test_unreachable_upstream_gets_502(proxy: ProxyFactory) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    base_url, guard, sink = proxy(upstream_url=f"http://127.0.0.1:{closed_port}/v1")
    with pytest.raises(openai.APIStatusError) as info:
        client(base_url).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 502
    assert records(guard, sink)[0]["status"] == "upstream_error"


def test_upstream_timeout_gets_504(proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.delay_s = 3
    base_url, guard, sink = proxy(timeout=httpx2.Timeout(0.5))
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        client(base_url).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 504 and time.monotonic() - started < 2.5
    assert records(guard, sink)[0]["status"] == "upstream_error"


def test_moderation_down_with_on_error_block_gets_503(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.moderation_status = 500
    base_url, guard, sink = proxy()
    with pytest.raises(openai.APIStatusError) as info:
        client(base_url).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 503 and info.value.code == "guard.moderation_unavailable"
    assert upstream.chat_requests == []
    moderation = records(guard, sink)[0]["moderation"]["input"]
    assert moderation["outcome"] == "error" and moderation["error"] == "http_500"


def test_upstream_errors_reach_the_client_with_status_and_body(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.status = 429
    upstream.error_body = {"error": {"message": "Rate limit reached", "type": "requests",
                                     "param": None, "code": "rate_limit_exceeded"}}
    base_url, guard, sink = proxy()
    with pytest.raises(openai.RateLimitError) as info:
        client(base_url).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["x-guard-decision"] == "allow"
    assert records(guard, sink)[0]["error"] == "http_429"


def test_models_pass_through_and_unknown_routes_are_refused(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, _, _ = proxy()
    models = client(base_url).models.list()
    assert "gpt-4o-mini" in [m.id for m in models.data]
    response = httpx2.post(f"{base_url}/completions", json={"model": "x", "prompt": "hi"})
    assert response.status_code == 404
    assert "GUARD_PASSTHROUGH" in response.json()["error"]["message"]
    assert not any(r.path.endswith("/completions") and "chat" not in r.path
                   for r in upstream.requests)


def test_client_that_disconnects_still_produces_one_record(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.delay_s = 1.0
    base_url, guard, sink = proxy()
    host, port = base_url.removeprefix("http://").removesuffix("/v1").split(":")
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    with socket.create_connection((host, int(port))) as s:
        s.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                   f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
                   f"{body}").encode())
        time.sleep(0.3)  # the request is with the upstream now
    (record,) = records(guard, sink)
    assert record["status"] == "client_disconnected" and record["truncated"] is True
