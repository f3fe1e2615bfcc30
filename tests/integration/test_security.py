"""Security properties of the proxy, over real HTTP on loopback.

No open relay; keys and cookies never logged, echoed or stored; errors without stack traces
or upstream keys; a request id the client cannot choose; size limits with OpenAI-shaped
errors; and 200 concurrent requests that never see each other's values.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import httpx2
import openai
import pytest

from guard.asgi import GuardMiddleware, Receive, Scope, Send
from guard.testing import FakeUpstream, LoopbackServer
from tests.conftest import GuardFactory
from tests.integration.conftest import ProxyFactory
from tests.support.sdk import records

NO_MODERATION = "version: 1\nname: security\nmoderation: {input: null}\n"
SERVER_KEY = "sk-upstream-SERVER-SECRET-0001"
CLIENT_KEY = "sk-client-CLIENT-SECRET-0002"
COOKIE = "session=COOKIE-SECRET-0003"
SECRETS = (SERVER_KEY, CLIENT_KEY, "COOKIE-SECRET-0003", "API-KEY-HEADER-SECRET-0004")
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}

def assert_openai_error(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in response.text and 'File "' not in response.text
    return dict(error)


def assert_no_secrets(*things: Any) -> None:
    dumped = json.dumps(things, default=str)
    for secret in SECRETS:
        assert secret not in dumped, f"{secret[:12]}… leaked"


# -- no open relay ------------------------------------------------------------------------

def test_with_a_server_key_unknown_clients_are_refused_on_every_route(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy(NO_MODERATION, server_key=SERVER_KEY, client_keys="good-key",
                                  passthrough=["/v1/files"])
    attempts = [("POST", "/chat/completions", CHAT), ("GET", "/models", None),
                ("GET", "/files", None), ("POST", "/files", {"purpose": "x"}),
                ("POST", "/embeddings", {"model": "m", "input": "x"})]
    for key in (None, "wrong-key", SERVER_KEY, "good-ke", "GOOD-KEY"):
        headers = {"authorization": f"Bearer {key}"} if key else {}
        for method, path, body in attempts:
            response = httpx2.request(method, base_url + path, json=body, headers=headers)
            error = assert_openai_error(response, 401)
            assert error["code"] == "invalid_api_key"
    assert upstream.requests == []
    with openai.OpenAI(base_url=base_url, api_key="good-key", max_retries=0) as sdk:
        sdk.chat.completions.create(**CHAT)
        sdk.models.list()
    sent = [r.headers["authorization"] for r in upstream.requests]
    assert sent == [f"Bearer {SERVER_KEY}"] * 2  # the client's key never goes upstream
    assert [r["status"] for r in records(guard, sink)] == ["ok"]  # refusals reach no engine


def test_api_key_header_is_checked_like_a_bearer_token(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, _, _ = proxy(NO_MODERATION, server_key=SERVER_KEY, client_keys="good-key")
    refused = httpx2.post(f"{base_url}/chat/completions", json=CHAT, headers={"api-key": "nope"})
    assert_openai_error(refused, 401)
    allowed = httpx2.post(f"{base_url}/chat/completions", json=CHAT,
                          headers={"api-key": "good-key"})
    assert allowed.status_code == 200
    assert "api-key" not in upstream.requests[-1].headers


# -- keys and cookies --------------------------------------------------------------------

def test_keys_and_cookies_are_never_logged_echoed_or_stored(
        proxy: ProxyFactory, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    base_url, guard, sink = proxy(max_body_bytes=2000)
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "cookie": COOKIE,
               "api-key": "API-KEY-HEADER-SECRET-0004"}
    url = f"{base_url}/chat/completions"
    responses = [
        httpx2.post(url, json=CHAT, headers=headers),
        httpx2.post(url, content=b"{not json", headers=headers),
        httpx2.post(url, json={**CHAT, "pad": "x" * 3000}, headers=headers),
        httpx2.post(f"{base_url}/nowhere", json=CHAT, headers=headers),
        httpx2.post(url, json={"model": "m", "messages": "not a list"}, headers=headers),
    ]
    upstream.moderation_status = 500
    responses.append(httpx2.post(url, json=CHAT, headers=headers))
    upstream.moderation_status, upstream.status = 200, 500
    responses.append(httpx2.post(url, json=CHAT, headers=headers))
    assert [r.status_code for r in responses] == [200, 400, 413, 404, 400, 503, 500]
    for response in responses:
        assert_no_secrets(response.text, dict(response.headers))
    audit = records(guard, sink, at_least=6)
    assert len(audit) == 6  # the 404 is not a guarded call
    assert_no_secrets(audit, caplog.text)
    assert all("cookie" not in r.headers for r in upstream.requests)
    assert all(r["principal"].startswith("key:") for r in audit)


def test_upstream_refusing_the_server_key_never_shows_it_to_the_client(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy(NO_MODERATION, server_key=SERVER_KEY, client_keys="good-key")
    upstream.status = 401
    upstream.error_body = {"error": {"message": f"Incorrect API key provided: {SERVER_KEY}.",
                                     "type": "invalid_request_error", "param": None,
                                     "code": "invalid_api_key"}}
    headers = {"authorization": "Bearer good-key"}
    refused = httpx2.post(f"{base_url}/chat/completions", json=CHAT, headers=headers)
    assert assert_openai_error(refused, 502)["code"] == "guard.upstream_auth_failed"
    upstream.status = 400
    upstream.error_body = {"error": {"message": f"Something about {SERVER_KEY}", "type": "x",
                                     "param": None, "code": None}}
    echoed = httpx2.post(f"{base_url}/chat/completions", json=CHAT, headers=headers)
    assert assert_openai_error(echoed, 400)["message"] == "Something about [redacted]"
    assert_no_secrets(refused.text, echoed.text, records(guard, sink, at_least=2))


def test_a_failing_app_gets_a_plain_500_without_a_stack_trace(
        make_guard: GuardFactory) -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError(f"internal detail at /srv/app.py with {SERVER_KEY}")

    guard, sink = make_guard(NO_MODERATION)
    with LoopbackServer(GuardMiddleware(broken, guard=guard)) as server:
        response = httpx2.post(f"{server.url}/v1/chat/completions", json=CHAT)
    error = assert_openai_error(response, 500)
    assert error["code"] == "guard.app_error"
    assert "internal detail" not in response.text and "RuntimeError" not in response.text
    (record,) = records(guard, sink)
    assert record["status"] == "error" and record["error"] == "RuntimeError"
    assert_no_secrets(record)


def test_a_failing_stage_fails_closed_with_an_openai_shaped_500(
        proxy: ProxyFactory, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    base_url, guard, sink = proxy(NO_MODERATION)

    async def broken_detect(*args: Any) -> Any:
        raise RuntimeError(f"detector exploded on {CLIENT_KEY}")

    monkeypatch.setattr(guard, "detect", broken_detect)
    response = httpx2.post(f"{base_url}/chat/completions", json=CHAT,
                           headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert assert_openai_error(response, 500)["code"] == "guard.internal_error"
    assert upstream.requests == []  # nothing unchecked went upstream
    (record,) = records(guard, sink)
    assert (record["status"], record["error"]) == ("error", "RuntimeError")
    assert_no_secrets(response.text, record)


# -- request id ----------------------------------------------------------------------------

def test_the_request_id_is_chosen_by_guard_not_by_the_client(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy(NO_MODERATION)
    evil = "req_evil\r\nx-injected: 1"
    response = httpx2.post(f"{base_url}/chat/completions", json=CHAT, headers={
        "x-guard-request-id": "req_attacker", "x-request-id": "req_attacker",
        "x-guard-decision": "allow", "x-client-id": evil.replace("\r\n", " ")})
    request_id = response.headers["x-guard-request-id"]
    assert re.fullmatch(r"req_[0-9a-f]{32}", request_id)
    assert response.headers.get_list("x-guard-request-id") == [request_id]
    (record,) = records(guard, sink)
    assert record["request_id"] == request_id


# -- limits --------------------------------------------------------------------------------

def test_oversized_headers_get_431_on_guarded_and_pass_through_routes(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy(NO_MODERATION, max_header_bytes=2048)
    big = {"x-padding": "a" * 3000}
    for response in (httpx2.post(f"{base_url}/chat/completions", json=CHAT, headers=big),
                     httpx2.get(f"{base_url}/models", headers=big)):
        error = assert_openai_error(response, 431)
        assert error["code"] == "request_header_fields_too_large"
    assert upstream.requests == []
    assert httpx2.post(f"{base_url}/chat/completions", json=CHAT).status_code == 200
    assert len(records(guard, sink)) == 1


def test_oversized_body_gets_413_through_the_sdk(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy(NO_MODERATION, max_body_bytes=4096)
    with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as sdk, \
            pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(model="gpt-4o-mini",
                                    messages=[{"role": "user", "content": "x" * 5000}])
    assert info.value.status_code == 413 and info.value.code == "request_too_large"
    assert upstream.requests == [] and records(guard, sink)[0]["status"] == "rejected"


def test_too_much_text_gets_400_before_any_detection(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy(NO_MODERATION, settings={"max_text_chars": 1000})
    messages = [{"role": "user", "content": "y" * 600}, {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "z" * 600}]
    with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as info:
            sdk.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
        assert info.value.code == "guard.text_too_large"
        assert info.value.param == "messages"
        sdk.chat.completions.create(model="gpt-4o-mini", messages=messages[:2])  # type: ignore[arg-type]
    assert len(upstream.chat_requests) == 1
    assert [r["status"] for r in records(guard, sink, at_least=2)] == ["rejected", "ok"]


# -- isolation under concurrency -----------------------------------------------------------

async def test_200_concurrent_requests_never_restore_each_others_values(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy(NO_MODERATION)
    n = 200

    def values(i: int) -> tuple[str, str]:
        return f"person{i}.q@example{i}.org", f"(415) 555-{1000 + i:04d}"

    async def one(sdk: openai.AsyncOpenAI, i: int) -> tuple[int, str]:
        email, phone = values(i)
        completion = await sdk.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "user", "content": f"Write to {email} or call {phone} today."}])
        return i, completion.choices[0].message.content or ""

    async with openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0,
                                  timeout=120) as sdk:
        results = await asyncio.gather(*(one(sdk, i) for i in range(n)))
    all_values = {i: values(i) for i in range(n)}
    for i, content in results:
        email, phone = all_values[i]
        assert f"Write to {email} or call {phone} today." in content
        found = set(re.findall(r"person\d+\.q@example\d+\.org", content))
        assert found == {email}
    sent = json.dumps([r.body for r in upstream.chat_requests])
    assert "@example" not in sent and "555-" not in sent
    audit = records(guard, sink, at_least=n)
    assert len(audit) == n and len({r["request_id"] for r in audit}) == n
    assert all(r["input_entities"].get("EMAIL_ADDRESS") == 1 for r in audit)
