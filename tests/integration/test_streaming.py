"""Streaming through the proxy with the official SDK (`stream=True`), over real HTTP.

The tests of the issue's list run with both the sync and the async client (``sdk``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from guard.testing import FakeUpstream
from tests.integration.conftest import ProxyFactory
from tests.support.sdk import assert_no_pii, records

RULES = """
version: 1
name: stream-rules
moderation: {input: null}
output:
  streaming: {window_chars: 32, overlap_chars: 12}
  rules:
    - id: competitor
      when: {keywords: [globex]}
      action: BLOCK_OR_REDACT
      message: Let's talk about our own products.
"""


@pytest.fixture(params=["sync", "async"])
def sdk(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def stream(kind: str, base_url: str, content: str = "hello", *,
           until: Callable[[ChatCompletionChunk], bool] | None = None,
           **kwargs: Any) -> list[ChatCompletionChunk]:
    """The chunks the official SDK yields (sync or async client); with ``until``, the
    stream is closed as soon as ``until(chunk)`` is true."""
    request: dict[str, Any] = {"model": "gpt-4o-mini", "stream": True,
                               "messages": [{"role": "user", "content": content}], **kwargs}
    got: list[ChatCompletionChunk] = []
    if kind == "sync":
        client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=30)
        with client, client.chat.completions.create(**request) as chunks:
            for chunk in chunks:
                got.append(chunk)
                if until is not None and until(chunk):
                    break
        return got

    async def run() -> None:
        async with openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0,
                                      timeout=30) as client:
            chunks = await client.chat.completions.create(**request)
            async with chunks:
                async for chunk in chunks:
                    got.append(chunk)
                    if until is not None and until(chunk):
                        break

    asyncio.run(run())
    return got


def content_of(chunks: list[ChatCompletionChunk]) -> tuple[list[str], list[str | None]]:
    pieces, finishes = [], []
    for chunk in chunks:
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finishes.append(choice.finish_reason)
    return pieces, finishes


def fixed_reply(text: str) -> Any:
    def reply(body: Any) -> dict[str, Any]:
        return {"id": "chatcmpl-s", "object": "chat.completion", "created": 0,
                "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 11, "total_tokens": 18}}
    return reply


def collect(stream: Any) -> tuple[list[str], list[str | None]]:
    pieces, finishes = [], []
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finishes.append(choice.finish_reason)
    return pieces, finishes


def ask(base_url: str, content: str = "hello", **kwargs: Any) -> Any:
    client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=30)
    return client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                          messages=[{"role": "user", "content": content}],
                                          **kwargs)


TEXT = "We compare well: unlike the globex deal, ours ships today with support included."


# -- the list, each with the sync and the async client -----------------------------


def test_forbidden_word_one_char_per_chunk_never_reaches_the_client(
        sdk: str, proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.reply = fixed_reply(TEXT)
    upstream.stream_pieces = list(TEXT)
    base_url, guard, sink = proxy(RULES.replace("BLOCK_OR_REDACT", "block"))
    chunks = stream(sdk, base_url)
    pieces, finishes = content_of(chunks)
    received = "".join(pieces)
    # In no form: not whole, not as a trailing fragment, not in any other field of any chunk.
    assert "globex" not in received.lower()
    assert not any(received.lower().endswith("globex"[:n]) for n in range(2, 6)), received
    assert "globex" not in json.dumps([c.model_dump() for c in chunks]).lower()
    assert received.endswith("Let's talk about our own products.")
    before = received.removesuffix("Let's talk about our own products.")
    assert TEXT.startswith(before) and len(before) < TEXT.index("globex")
    assert finishes[-1] == "content_filter"
    (record,) = records(guard, sink)
    assert record["stream"] is True and record["decision"] == "block"
    assert record["status"] == "blocked"
    assert record["output_rules"] == [{"id": "competitor", "action": "block"}]


def test_email_placeholder_split_across_three_chunks_is_restored_whole(
        sdk: str, proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.reply = fixed_reply("")
    upstream.stream_pieces = ["I will write to <EMAIL_", "ADDRESS", "_1> today."]
    base_url, guard, sink = proxy()
    pieces, finishes = content_of(stream(sdk, base_url, "Please mail maria.gonzalez@example.org"))
    assert "".join(pieces) == "I will write to maria.gonzalez@example.org today."
    assert any("maria.gonzalez@example.org" in p for p in pieces), "restored whole, in one piece"
    assert not any("<" in p or "ADDRESS" in p for p in pieces)
    assert finishes[-1] == "stop"
    assert_no_pii([r.body for r in upstream.chat_requests], values=["maria.gonzalez@example.org"])
    (record,) = records(guard, sink)
    assert record["input_entities"] == {"EMAIL_ADDRESS": 1}
    assert_no_pii(record, values=["maria.gonzalez@example.org"])


def test_pii_in_streamed_tool_call_arguments_is_restored(
        sdk: str, proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.stream_chunk_chars = 3
    base_url, guard, sink = proxy()
    tools = [{"type": "function", "function": {"name": "send_email", "parameters": {
        "type": "object", "properties": {"to": {"type": "string"}}}}}]
    arguments, names, finishes = "", [], []
    for chunk in stream(sdk, base_url, "mail maria.gonzalez@example.org", tools=tools):
        for choice in chunk.choices:
            finishes.append(choice.finish_reason)
            for call in choice.delta.tool_calls or []:
                if call.function is not None:
                    arguments += call.function.arguments or ""
                    names += [call.function.name] if call.function.name else []
    assert names == ["send_email"] and finishes[-1] == "tool_calls"
    assert json.loads(arguments) == {"to": "mail maria.gonzalez@example.org"}
    sent = upstream.chat_requests[-1].body["messages"][0]["content"]
    assert sent == "mail <EMAIL_ADDRESS_1>"
    assert_no_pii(records(guard, sink), values=["maria.gonzalez@example.org"])


def test_mid_stream_block_gives_content_filter_and_the_iterator_ends_cleanly(
        sdk: str, proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.reply = fixed_reply("All fine so far. " * 20 + TEXT + " More text." * 200)
    upstream.stream_chunk_chars = 2
    upstream.stream_delay_s = 0.001
    base_url, guard, sink = proxy(RULES.replace("BLOCK_OR_REDACT", "block"))
    chunks = stream(sdk, base_url)  # returns only if the iterator ends by itself
    pieces, finishes = content_of(chunks)
    assert "".join(pieces).startswith("All fine so far. ")
    assert [f for f in finishes if f] == ["content_filter"]
    (record,) = records(guard, sink)
    assert record["status"] == "blocked" and record["truncated"] is False
    # Guard closed the upstream at the block instead of reading the rest of the answer.
    deadline = time.monotonic() + 5
    while not upstream.stream_cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.stream_cancelled and not upstream.stream_finished


def test_disconnect_after_first_chunk_cancels_upstream_and_writes_one_record(
        sdk: str, proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.reply = fixed_reply("word " * 400)
    upstream.stream_chunk_chars = 5
    upstream.stream_delay_s = 0.01
    base_url, guard, sink = proxy()
    chunks = stream(sdk, base_url, until=lambda chunk: True)  # the client goes after one chunk
    assert len(chunks) == 1
    deadline = time.monotonic() + 5
    while not upstream.stream_cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.stream_cancelled and not upstream.stream_finished
    (record,) = records(guard, sink)
    assert record["status"] == "client_disconnected" and record["truncated"] is True
    time.sleep(0.2)  # a second record would come right after the first
    guard.audit_writer.flush()
    assert len(sink.records) == 1


def test_usage_arrives_when_asked_for(sdk: str, proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.reply = fixed_reply("All good.")
    base_url, guard, sink = proxy()
    chunks = stream(sdk, base_url, stream_options={"include_usage": True})
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 11
    assert chunks[-1].choices == []
    assert all(c.usage is None for c in stream(sdk, base_url)), "and only when asked for"
    assert records(guard, sink)[0]["usage"] == {"prompt_tokens": 7, "completion_tokens": 11}


def test_first_chunk_arrives_before_the_upstream_has_finished(
        sdk: str, proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.reply = fixed_reply("word " * 200)
    upstream.stream_chunk_chars = 5
    upstream.stream_delay_s = 0.01
    base_url, guard, sink = proxy()
    seen: list[bool] = []

    def first_text(chunk: ChatCompletionChunk) -> bool:
        if chunk.choices and chunk.choices[0].delta.content:
            seen.append(upstream.stream_finished)
            return True
        return False

    stream(sdk, base_url, until=first_text)
    assert seen == [False], "streaming is real, not buffered to the end"
    assert "first_token" in records(guard, sink)[0]["latency_ms"]


# -- more -------------------------------------------------------------------------------


def test_redact_rule_rewrites_held_text_and_loses_nothing_else(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.reply = fixed_reply(TEXT)
    upstream.stream_pieces = list(TEXT)
    base_url, guard, sink = proxy(RULES.replace("BLOCK_OR_REDACT", "redact"))
    pieces, finishes = collect(ask(base_url))
    assert "".join(pieces) == TEXT.replace("globex", "[REDACTED:competitor]")
    assert finishes[-1] == "stop"
    assert records(guard, sink)[0]["decision"] == "redact"


def test_broken_upstream_stream_gives_an_error_the_sdk_raises(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.reply = fixed_reply("word " * 100)
    upstream.stream_break_after = 10
    base_url, guard, sink = proxy()
    with pytest.raises(openai.APIError):
        collect(ask(base_url))
    record = records(guard, sink)[0]
    assert record["status"] == "upstream_error" and record["truncated"] is True


def test_stream_without_rules_hits_delivers_the_reply_exactly(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    text = "Line one.\nLine two with unicode: café ✓, and a <tag> that is not a placeholder."
    upstream.reply = fixed_reply(text)
    upstream.stream_pieces = list(text)
    base_url, _, _ = proxy()
    pieces, finishes = collect(ask(base_url))
    assert "".join(pieces) == text and finishes[-1] == "stop"


def test_monitor_mode_releases_everything_unaltered_and_records_the_block(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.reply = fixed_reply(TEXT)
    upstream.stream_pieces = list(TEXT)
    base_url, guard, sink = proxy(RULES.replace("BLOCK_OR_REDACT", "block")
                                  .replace("name: stream-rules", "name: watch\nmode: monitor"))
    pieces, finishes = collect(ask(base_url))
    assert "".join(pieces) == TEXT and finishes[-1] == "stop"
    (record,) = records(guard, sink)
    assert record["mode"] == "monitor" and record["decision"] == "block"
    assert record["output_rules"] == [{"id": "competitor", "action": "block"}]


def test_each_choice_of_n_is_checked_and_restored_on_its_own(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, _, _ = proxy()
    body = {"model": "gpt-4o-mini", "stream": True, "n": 2,
            "messages": [{"role": "user", "content": "mail maria.gonzalez@example.org"}]}
    two_choices = [
        f'data: {{"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":'
        f'[{{"index":{i},"delta":{{"content":"{piece}"}},"finish_reason":null}}]}}\n\n'
        for piece, i in (("Hi <EMAIL_", 0), ("Yo <EMAIL_ADD", 1), ("ADDRESS_1>!", 0), ("RESS_1>?", 1))
    ] + [
        f'data: {{"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":'
        f'[{{"index":{i},"delta":{{}},"finish_reason":"stop"}}]}}\n\n' for i in (0, 1)
    ] + ["data: [DONE]\n\n"]
    upstream.raw_stream = [line.encode() for line in two_choices]
    texts: dict[int, str] = {0: "", 1: ""}
    with httpx2.stream("POST", f"{base_url}/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:])["choices"]:
                    texts[choice["index"]] += choice["delta"].get("content") or ""
    assert texts == {0: "Hi maria.gonzalez@example.org!", 1: "Yo maria.gonzalez@example.org?"}
