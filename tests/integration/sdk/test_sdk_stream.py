"""Streamed chat completions (``stream=True``) through wrapped and protected SDK clients.

The fake upstream streams its answer in 5-character pieces, so placeholders arrive split
across chunks; the client must only ever see checked text with placeholders restored whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from guard import Guard, MemorySink
from tests.support.sdk import (
    HISTORY,
    SdkUpstream,
    assert_no_pii,
    records,
    reply_with,
)

KEY = "sk-client-key-123"
RESTORED = "Call me at (415) 555-0132 or mail maria.gonzalez@example.org."
LONG = " ".join(f"Sentence number {i} of a long and harmless answer." for i in range(40))


def sync_client(upstream: SdkUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=upstream.base_url, api_key=KEY, max_retries=0)


def test_sync_stream_restores_placeholders_split_across_chunks(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    with guard.wrap(sync_client(upstream)) as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=HISTORY, stream=True,
            stream_options={"include_usage": True})
        assert isinstance(stream, openai.Stream)
        chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content.endswith(RESTORED)
    assert "<PHONE_NUMBER_1>" not in content and "<EMAIL" not in content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
    assert upstream.chat_requests[-1].body["messages"][2]["content"] == (
        "Call me at <PHONE_NUMBER_1> or mail <EMAIL_ADDRESS_1>.")
    (record,) = records(guard, sink)
    assert (record["stream"], record["status"], record["decision"]) == (True, "ok", "redact")
    assert record["usage"]["prompt_tokens"] > 0 and record["truncated"] is False
    assert "first_token" in record["latency_ms"]
    assert_no_pii(record, [r.body for r in upstream.requests])


async def test_async_stream_restores_placeholders_split_across_chunks(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    plain = openai.AsyncOpenAI(base_url=upstream.base_url, api_key=KEY, max_retries=0)
    async with guard.wrap(plain) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=HISTORY, stream=True)
        assert isinstance(stream, openai.AsyncStream)
        content = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert content.endswith(RESTORED)
    (record,) = records(guard, sink)
    assert (record["stream"], record["status"]) == (True, "ok")
    assert_no_pii(record, [r.body for r in upstream.requests])


def test_output_rule_block_mid_stream_ends_with_content_filter(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    upstream.reply = reply_with("Here you go: 5500 0000 0000 0004 exp 12/29. " + LONG)
    with guard.wrap(sync_client(upstream)) as client, client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "a card?"}],
            stream=True) as stream:
        chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "5500" not in content
    assert content.endswith("The answer contained payment data and was withheld.")
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    (record,) = records(guard, sink)
    assert record["decision"] == "block" and record["stream"] is True
    assert record["output_rules"] == [{"id": "no-payment-data", "action": "block"}]


def test_consumer_that_stops_early_is_recorded_as_disconnected(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    upstream.reply = reply_with(LONG)
    with guard.wrap(sync_client(upstream)) as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "talk"}], stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        stream.close()
    (record,) = records(guard, sink)
    assert (record["status"], record["truncated"]) == ("client_disconnected", True)


def test_blocked_stream_request_raises_before_any_chunk(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    with guard.wrap(sync_client(upstream)) as client, \
            pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "how to kill my boss"}],
            stream=True)
    assert info.value.code == "guard.moderation"
    assert upstream.chat_requests == []
    assert len(records(guard, sink)) == 1


def test_upstream_error_on_a_stream_request_reaches_the_sdk(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    upstream.status = 500
    with guard.wrap(sync_client(upstream)) as client, \
            pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True)
    (record,) = records(guard, sink)
    assert (record["status"], record["error"]) == ("upstream_error", "http_500")


def test_protected_generator_streams_through_a_plain_client(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded

    @guard.protect(user="u1", purpose="chat")
    def deltas() -> Iterator[str]:
        with sync_client(upstream) as client:
            for chunk in client.chat.completions.create(
                    model="gpt-4o-mini", messages=HISTORY, stream=True):
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content

    assert "".join(deltas()).endswith(RESTORED)
    (record,) = records(guard, sink)
    assert record["context"]["function"] == deltas.__qualname__
    assert record["principal"] == "user:u1" and record["stream"] is True
    assert_no_pii(record, [r.body for r in upstream.requests])


async def test_protected_async_generator_streams_through_a_plain_client(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded

    @guard.protect(user="u2")
    async def deltas() -> AsyncIterator[str]:
        async with openai.AsyncOpenAI(base_url=upstream.base_url, api_key=KEY,
                                      max_retries=0) as client:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=HISTORY, stream=True)
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content

    assert "".join([d async for d in deltas()]).endswith(RESTORED)
    (record,) = records(guard, sink)
    assert record["principal"] == "user:u2" and record["stream"] is True


def test_upstream_that_breaks_mid_stream_raises_and_is_recorded(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    upstream.reply = reply_with(LONG)
    upstream.stream_break_after = 3
    with guard.wrap(sync_client(upstream)) as client, pytest.raises(openai.APIConnectionError):
        for _ in client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "talk"}],
                stream=True):
            pass
    (record,) = records(guard, sink)
    assert (record["status"], record["truncated"]) == ("upstream_error", True)
    assert record["error"]


async def test_async_consumer_that_stops_early_is_recorded_as_disconnected(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    upstream.reply = reply_with(LONG)
    plain = openai.AsyncOpenAI(base_url=upstream.base_url, api_key=KEY, max_retries=0)
    async with guard.wrap(plain) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "talk"}], stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        await stream.close()
    (record,) = records(guard, sink)
    assert (record["status"], record["truncated"]) == ("client_disconnected", True)
