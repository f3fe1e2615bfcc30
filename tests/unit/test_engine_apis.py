"""The engine's one entry point over every API: wire format by route or by name, embeddings
PII actions, the images policy, and Responses streams checked like chat streams."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from guard.errors import WireFormatError
from guard.offline import offline_response, response_events, typed_sse_lines
from guard.wire.sse import SSEParser
from tests.conftest import GuardFactory

EMBEDDINGS = """
version: 1
name: emb
moderation: {input: null}
pii: {embeddings: EMB}
"""

IMAGES = """
version: 1
name: img
moderation: {input: null}
images: {action: ACTION, max_data_url_bytes: 64}
"""

STREAM_RULES = """
version: 1
name: stream
moderation: {input: null}
output:
  streaming: {window_chars: 16, overlap_chars: 8}
  rules:
    - id: competitor
      when: {keywords: [globex]}
      action: block
      message: Let's talk about our own products.
"""


async def test_route_picks_the_format_and_api_overrides_it(make_guard: GuardFactory) -> None:
    guard, sink = make_guard()
    async with guard.call(route="/v1/responses") as call:
        verdict = await call.check_request({"model": "m", "input": "mail ann@example.com"})
    assert verdict.body["input"] == "mail <EMAIL_ADDRESS_1>"
    async with guard.call(route="/batch/line") as call:  # a route that says nothing
        verdict = await call.check_request({"input": ["mail ann@example.com"]}, api="embeddings")
    assert verdict.body["input"] == ["mail [EMAIL_ADDRESS]"]
    async with guard.call(route="/v1/responses") as call:
        with pytest.raises(WireFormatError):
            await call.check_request({"messages": [{"role": "user", "content": "hi"}]})
    guard.close()
    assert [r["route"] for r in sink.records] == ["/v1/responses", "/batch/line", "/v1/responses"]


@pytest.mark.parametrize(("action", "expected"), [
    ("mask", "[PERSON] wrote to [EMAIL_ADDRESS]"),
    ("pseudonymise", "<PERSON_1> wrote to <EMAIL_ADDRESS_1>"),
])
async def test_embeddings_pii_follows_the_policys_embeddings_action(
        make_guard: GuardFactory, action: str, expected: str) -> None:
    guard, _ = make_guard(EMBEDDINGS.replace("EMB", action))
    async with guard.call(route="/v1/embeddings") as call:
        verdict = await call.check_request({"input": "Maria Gonzalez wrote to ann@example.com"})
        answer = await call.check_response({"object": "list", "data": [], "usage": {
            "prompt_tokens": 4, "total_tokens": 4}})
    assert verdict.decision == "redact" and verdict.body["input"] == expected
    assert answer.decision == "allow" and answer.body["data"] == []
    guard.close()


async def test_embeddings_block_refuses_and_blocked_entities_stay_blocked(
        make_guard: GuardFactory) -> None:
    guard, _ = make_guard(EMBEDDINGS.replace("EMB", "block"))
    async with guard.call(route="/v1/embeddings") as call:
        verdict = await call.check_request({"input": ["fine", "ann@example.com"]})
    assert verdict.blocked and verdict.code == "guard.pii" and "EMAIL_ADDRESS" in (verdict.message or "")
    masked, _ = make_guard(EMBEDDINGS.replace("EMB", "mask").replace(
        "pii: {", "pii: {per_entity: {US_SSN: block}, "))
    async with masked.call(route="/v1/embeddings") as call:
        verdict = await call.check_request({"input": "SSN 536-22-7614"})
    assert verdict.blocked and verdict.code == "guard.pii"
    guard.close()
    masked.close()


DATA_URL = "data:image/png;base64," + "A" * 100


@pytest.mark.parametrize(("action", "image", "code"), [
    ("block", "https://example.com/a.png", "guard.policy"),
    ("moderate", DATA_URL, "guard.image_too_large"),
    ("moderate", {"file_id": "file-1"}, "guard.policy"),
])
async def test_images_policy_refuses_with_a_clear_code(
        make_guard: GuardFactory, action: str, image: Any, code: str) -> None:
    guard, sink = make_guard(IMAGES.replace("ACTION", action))
    part = {"type": "input_image", **(image if isinstance(image, dict) else {"image_url": image})}
    async with guard.call(route="/v1/responses") as call:
        verdict = await call.check_request({"input": [{"role": "user", "content": [part]}]})
    assert verdict.blocked and verdict.code == code
    assert "input[0].content[0]" in (verdict.message or "")
    guard.close()
    assert sink.records[0]["code"] == code and sink.records[0]["status"] == "blocked"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "data:text/plain;base64,aGk="])
async def test_image_urls_that_are_not_images_are_wrong_shapes(
        make_guard: GuardFactory, url: str) -> None:
    guard, _ = make_guard(IMAGES.replace("ACTION", "allow"))
    async with guard.call() as call:
        with pytest.raises(WireFormatError) as info:
            await call.check_request({"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}}]}]})
    assert info.value.param == "messages[0].content[0].image_url"
    guard.close()


def _events(raw: bytes) -> list[dict[str, Any]]:
    parser = SSEParser()
    return [json.loads(e.data) for e in parser.feed(raw) + parser.close() if e.data != "[DONE]"]


async def _stream(make_guard: GuardFactory, yaml_text: str | None, text: str,
                  events: list[dict[str, Any]] | None = None,
                  piece: int = 3) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    guard, sink = make_guard(yaml_text)
    async with guard.call(route="/v1/responses") as call:
        await call.check_request({"model": "gpt-4o-mini", "stream": True, "input": text})
        stream = call.stream_guard()
        reply = offline_response({"input": text})
        raw = b"".join(typed_sse_lines(events or response_events(reply, chunk_chars=piece)))
        out = bytearray()
        for i in range(0, len(raw), 7):  # bytes split anywhere, events split across reads
            out += await stream.feed(raw[i:i + 7])
            if stream.stopped:
                break
        out += await stream.finish()
    guard.close()
    return _events(bytes(out)), sink.records[0]


async def test_streamed_placeholders_split_across_deltas_come_back_whole(
        make_guard: GuardFactory) -> None:
    events, record = await _stream(make_guard, STREAM_RULES, "I'm Maria Gonzalez, maria@example.org")
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text.endswith("I'm Maria Gonzalez, maria@example.org")
    done = next(e for e in events if e["type"] == "response.output_text.done")
    final = events[-1]
    assert done["text"] == text and final["type"] == "response.completed"
    assert final["response"]["output"][0]["content"][0]["text"] == text
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert record["decision"] == "redact" and record["stream"] is True


async def test_a_block_mid_stream_ends_with_response_incomplete_content_filter(
        make_guard: GuardFactory) -> None:
    events, record = await _stream(make_guard, STREAM_RULES,
                                   "tell me all about globex and its many products")
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert "globex" not in text and text.endswith("Let's talk about our own products.")
    final = events[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "content_filter"}
    assert final["response"]["output"][0]["content"][0]["text"] == text
    assert not any(e["type"] == "response.completed" for e in events)
    assert record["decision"] == "block" and record["output_rules"] == [
        {"id": "competitor", "action": "block"}]


async def test_a_block_inside_function_arguments_replaces_the_call_by_a_message(
        make_guard: GuardFactory) -> None:
    reply = {**offline_response({"input": "x"}), "output": [
        {"id": "fc_1", "type": "function_call", "call_id": "c", "name": "f", "status": "completed",
         "arguments": json.dumps({"q": "the globex pricing sheet, please"})}]}
    events, record = await _stream(make_guard, STREAM_RULES, "x",
                                   events=response_events(reply, chunk_chars=4))
    arguments = "".join(e["delta"] for e in events
                        if e["type"] == "response.function_call_arguments.delta")
    assert "globex" not in arguments
    final = events[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["output"][0]["type"] == "message"
    assert final["response"]["output"][0]["content"][0]["text"] == (
        "Let's talk about our own products.")
    assert record["decision"] == "block"


async def test_unknown_events_with_text_are_dropped_and_a_cut_stream_says_so(
        make_guard: GuardFactory) -> None:
    reply = offline_response({"input": "hello"})
    events = response_events(reply)
    cut = [*events[:4], {"type": "response.reasoning_summary_text.delta", "delta": "secret",
                         "sequence_number": 99}, *events[4:-1]]  # no response.completed
    out, record = await _stream(make_guard, None, "hello", events=cut)
    assert not any("secret" in json.dumps(e) for e in out)
    assert out[-1]["type"] == "error" and out[-1]["error"]["code"] == "guard.upstream_stream_error"
    assert record["status"] == "upstream_error" and record["truncated"] is True


async def test_monitor_mode_passes_a_responses_stream_unaltered_and_records_the_block(
        make_guard: GuardFactory) -> None:
    guard, sink = make_guard(STREAM_RULES.replace("name: stream", "name: stream\nmode: monitor"))
    raw = b"".join(typed_sse_lines(response_events(
        offline_response({"input": "all about globex please"}), chunk_chars=5)))
    async with guard.call(route="/v1/responses") as call:
        await call.check_request({"stream": True, "input": "all about globex please"})
        stream = call.stream_guard()
        out = b"".join([await stream.feed(raw[i:i + 50]) for i in range(0, len(raw), 50)])
        out += await stream.finish()
    guard.close()
    assert out == raw
    (record,) = sink.records
    assert record["mode"] == "monitor" and record["decision"] == "block"
    assert record["status"] == "ok"


async def test_a_responses_stream_is_delivered_with_its_terminal_event(
        make_guard: GuardFactory) -> None:
    """No [DONE] in a Responses stream: once response.completed is out, a client that hangs
    up (or a middleware that stops reading an upstream that keeps its body open) does not
    cut the answer short."""
    guard, sink = make_guard(STREAM_RULES)
    raw = b"".join(typed_sse_lines(response_events(offline_response({"input": "hello"}))))
    async with guard.call(route="/v1/responses") as call:
        await call.check_request({"model": "gpt-4o-mini", "stream": True, "input": "hello"})
        stream = call.stream_guard()
        await stream.ingest(raw)  # the upstream body stays open: no end_input yet
        out = bytearray()
        releases = stream.releases()
        while not stream.delivered:
            out += await asyncio.wait_for(anext(releases), 30)  # never hang on a regression
        assert _events(bytes(out))[-1]["type"] == "response.completed"
        stream.end_input()
        assert [data async for data in releases] == []
        await stream.aclose()
    guard.close()
    assert sink.records[0]["status"] == "ok" and sink.records[0]["truncated"] is False
