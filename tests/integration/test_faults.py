"""Fault injection: a failing moderation endpoint and a failing upstream, over real HTTP.

For each fault the official SDK gets the documented answer, the audit record says what
happened (an outage is never a clean pass), and the proxy answers the next request normally.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import openai
import pytest

from guard.testing import FakeUpstream
from tests.integration.conftest import ProxyFactory
from tests.support.fake_moderation import FakeModeration, closed_port
from tests.support.sdk import HISTORY, PII, assert_no_pii, records

Ask = Callable[..., Any]


def moderation_policy(base_url: str, *, on_error: str = "block", failures: int = 5,
                      cooldown_s: float = 30) -> str:
    return f"""
version: 1
name: faults
moderation:
  input:
    provider: openai
    base_url: {base_url}
    timeout_s: 0.5
    on_error: {on_error}
    circuit_breaker: {{failures: {failures}, cooldown_s: {cooldown_s}}}
"""


@pytest.fixture
def moderation() -> Iterator[FakeModeration]:
    with FakeModeration() as fake:
        yield fake


def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="sk-client", max_retries=0, timeout=20)


def ask(base_url: str, **kwargs: Any) -> Any:
    """A non-streaming completion (the client is closed before returning)."""
    kwargs.setdefault("messages", HISTORY)
    with client(base_url) as sdk:
        return sdk.chat.completions.create(model="gpt-4o-mini", **kwargs)


def stream_text(base_url: str, received: list[str] | None = None) -> str:
    """A streamed completion's text; pieces also go to ``received`` as they arrive."""
    received = [] if received is None else received
    with client(base_url) as sdk:
        for chunk in sdk.chat.completions.create(model="gpt-4o-mini", messages=HISTORY,
                                                 stream=True):
            received.extend(choice.delta.content or "" for choice in chunk.choices)
    return "".join(received)


def assert_healthy(base_url: str, upstream: FakeUpstream) -> None:
    """The proxy still answers a normal request normally, PII restored."""
    before = len(upstream.chat_requests)
    answer = ask(base_url)
    assert "maria.gonzalez@example.org" in (answer.choices[0].message.content or "")
    assert len(upstream.chat_requests) == before + 1
    assert_no_pii(upstream.chat_requests[-1].body)


# -- moderation faults -------------------------------------------------------------------

MODERATION_FAULTS: dict[str, tuple[Callable[[FakeModeration], None], str]] = {
    "timeout": (lambda fake: setattr(fake, "delay_s", 2.0), "timeout"),
    "http_500": (lambda fake: setattr(fake, "status", 500), "http_500"),
    "slow_body": (lambda fake: setattr(fake, "slow_body_s", 2.0), "timeout"),
    "not_json": (lambda fake: setattr(fake, "raw_body", b"<html>oops"), "bad_response"),
}


@pytest.mark.parametrize("fault", sorted(MODERATION_FAULTS))
def test_moderation_fault_with_on_error_block_gets_503_and_an_honest_record(
        fault: str, proxy: ProxyFactory, upstream: FakeUpstream,
        moderation: FakeModeration) -> None:
    inject, kind = MODERATION_FAULTS[fault]
    base_url, guard, sink = proxy(moderation_policy(moderation.base_url))
    inject(moderation)
    with pytest.raises(openai.APIStatusError) as info:
        ask(base_url)
    assert info.value.status_code == 503 and info.value.code == "guard.moderation_unavailable"
    assert upstream.chat_requests == []
    (record,) = records(guard, sink)
    assert record["decision"] == "block" and record["code"] == "guard.moderation_unavailable"
    assert record["moderation"]["input"]["outcome"] == "error"
    assert record["moderation"]["input"]["error"] == kind
    assert record["moderation"]["input"]["on_error"] == "block"
    assert_no_pii(record, [r.body for r in moderation.requests])
    moderation.reset()
    assert_healthy(base_url, upstream)
    assert records(guard, sink, at_least=2)[1]["moderation"]["input"]["outcome"] == "pass"


def test_refused_moderation_connection_gets_503_and_the_proxy_keeps_serving(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy(moderation_policy(f"http://127.0.0.1:{closed_port()}/v1"))
    for _ in range(2):
        with pytest.raises(openai.APIStatusError) as info:
            ask(base_url)
        assert info.value.status_code == 503
    with client(base_url) as sdk:
        assert sdk.models.list().data  # pass-through still works
    kinds = [r["moderation"]["input"]["error"] for r in records(guard, sink, at_least=2)]
    assert kinds == ["connection", "connection"] and upstream.chat_requests == []


def test_moderation_fault_with_on_error_allow_forwards_but_records_the_error(
        proxy: ProxyFactory, upstream: FakeUpstream, moderation: FakeModeration) -> None:
    base_url, guard, sink = proxy(moderation_policy(moderation.base_url, on_error="allow"))
    moderation.status = 500
    answer = ask(base_url)
    assert "maria.gonzalez@example.org" in (answer.choices[0].message.content or "")
    (record,) = records(guard, sink)
    assert record["moderation"]["input"]["outcome"] == "error"
    assert record["moderation"]["input"]["on_error"] == "allow"
    assert record["decision"] == "redact" and record["status"] == "ok"


def test_circuit_opens_after_repeated_failures_and_recovers_by_itself(
        proxy: ProxyFactory, upstream: FakeUpstream, moderation: FakeModeration) -> None:
    base_url, guard, sink = proxy(moderation_policy(moderation.base_url, failures=2,
                                                    cooldown_s=0.5))
    moderation.status = 500
    for _ in range(4):
        with pytest.raises(openai.APIStatusError) as info:
            ask(base_url)
        assert info.value.code == "guard.moderation_unavailable"
    assert len(moderation.requests) == 2  # the open circuit spared the endpoint
    kinds = [r["moderation"]["input"]["error"] for r in records(guard, sink, at_least=4)]
    assert kinds == ["http_500", "http_500", "circuit_open", "circuit_open"]
    moderation.reset()
    time.sleep(0.6)  # the cool-down; then one probe goes out, succeeds and closes it
    assert_healthy(base_url, upstream)
    assert_healthy(base_url, upstream)
    assert len(moderation.requests) == 2
    latest = records(guard, sink, at_least=6)[-2:]
    assert [r["moderation"]["input"]["outcome"] for r in latest] == ["pass", "pass"]


def test_while_the_circuit_is_open_on_error_local_still_moderates(
        proxy: ProxyFactory, upstream: FakeUpstream, moderation: FakeModeration) -> None:
    base_url, guard, sink = proxy(moderation_policy(moderation.base_url, on_error="local",
                                                    failures=1))
    moderation.status = 500
    ask(base_url)
    ask(base_url)
    assert len(moderation.requests) == 1
    second = records(guard, sink, at_least=2)[1]["moderation"]["input"]
    assert second["error"] == "circuit_open" and second["fallback"] == "local"
    assert second["failed_provider"] == "openai"


# -- upstream faults ---------------------------------------------------------------------

NO_MODERATION = "version: 1\nname: upstream-faults\nmoderation: {input: null}\n"


def test_rate_limit_reaches_the_client_with_its_retry_after(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.status = 429
    upstream.error_headers = {"retry-after": "7"}
    upstream.error_body = {"error": {"message": "Rate limit reached", "type": "requests",
                                     "param": None, "code": "rate_limit_exceeded"}}
    base_url, guard, sink = proxy(NO_MODERATION)
    with pytest.raises(openai.RateLimitError) as info:
        ask(base_url)
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.code == "rate_limit_exceeded"
    assert len(upstream.chat_requests) == 1
    (record,) = records(guard, sink)
    assert (record["status"], record["error"]) == ("upstream_error", "http_429")
    upstream.status, upstream.error_headers, upstream.error_body = 200, {}, None
    assert_healthy(base_url, upstream)


def test_upstream_500_reaches_the_client_as_an_internal_server_error(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.status = 500
    base_url, guard, sink = proxy(NO_MODERATION)
    with pytest.raises(openai.InternalServerError):
        ask(base_url)
    (record,) = records(guard, sink)
    assert (record["status"], record["error"]) == ("upstream_error", "http_500")
    upstream.status = 200
    assert_healthy(base_url, upstream)


def test_stream_reset_midway_raises_in_the_sdk_and_is_recorded_as_a_reset(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.stream_break_after = 6
    base_url, guard, sink = proxy(NO_MODERATION)
    with pytest.raises(openai.APIError, match="ended before it was complete"):
        stream_text(base_url)
    (record,) = records(guard, sink)
    assert (record["status"], record["error"]) == ("upstream_error", "upstream_reset")
    assert record["truncated"] is True and record["stream"] is True
    upstream.stream_break_after = None
    assert_healthy(base_url, upstream)


def test_never_ending_stream_is_cut_off_at_the_exchange_limit(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.stream_forever = True
    base_url, guard, sink = proxy(NO_MODERATION, upstream_max_s=0.5)
    with pytest.raises(openai.APIError, match="ended before it was complete"):
        stream_text(base_url)
    (record,) = records(guard, sink)
    assert (record["status"], record["error"]) == ("upstream_error", "upstream_deadline")
    assert record["truncated"] is True
    deadline = time.monotonic() + 5
    while not upstream.stream_cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.stream_cancelled  # Guard closed the upstream connection
    upstream.stream_forever = False
    assert_healthy(base_url, upstream)


def test_stalled_stream_ends_at_the_read_timeout(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.stream_stall = True
    base_url, guard, sink = proxy(NO_MODERATION, timeout=httpx2.Timeout(5.0, read=0.5))
    with pytest.raises(openai.APIError, match="ended before it was complete"):
        stream_text(base_url)
    (record,) = records(guard, sink)
    assert (record["status"], record["error"]) == ("upstream_error", "upstream_timeout")
    upstream.stream_stall = False
    assert_healthy(base_url, upstream)


def test_malformed_sse_is_withheld_and_ends_the_stream_with_an_error(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    good = (b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"gpt-4o-mini",'
            b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hello there"},'
            b'"finish_reason":null}]}\n\n')
    upstream.raw_stream = [good, b'data: {"choices": [{"delta": {"content": "unchec\n\n',
                           b"data: [DONE]\n\n"]
    base_url, guard, sink = proxy(NO_MODERATION)
    received: list[str] = []
    with pytest.raises(openai.APIError, match="could not read"):
        stream_text(base_url, received)
    assert "".join(received) == "Hello there"  # checked text released, nothing unchecked
    (record,) = records(guard, sink)
    assert (record["status"], record["error"]) == ("upstream_error", "malformed_sse")
    assert record["decision"] != "block"
    upstream.raw_stream = None
    assert_healthy(base_url, upstream)


def test_upstream_faults_never_put_pii_in_records(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, guard, sink = proxy(NO_MODERATION)
    upstream.stream_break_after = 3
    with pytest.raises(openai.APIError):
        stream_text(base_url)
    upstream.stream_break_after = None
    upstream.status = 500
    with pytest.raises(openai.InternalServerError):
        ask(base_url)
    assert_no_pii(records(guard, sink, at_least=2), values=PII)
