"""``guard.wrap(client)`` around the Responses and embeddings APIs: sync and async, streamed
or not, against a fake upstream over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import openai

from guard import Guard, MemorySink
from tests.support.sdk import PII, SdkUpstream, assert_no_pii, records

SAID = "I'm Maria Gonzalez, mail maria.gonzalez@example.org or call (415) 555-0132."
TOOLS: Any = [{"type": "function", "name": "send_mail", "parameters": {
    "type": "object", "properties": {"to": {"type": "string"}}}}]


def test_sync_responses_stream_and_not_are_redacted_and_restored(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    with openai.OpenAI(base_url=upstream.base_url, api_key="k", max_retries=0) as plain:
        client = guard.wrap(plain)
        answer = client.responses.create(model="gpt-4o-mini", input=SAID)
        events = list(client.responses.create(model="gpt-4o-mini", input=SAID, stream=True))
    assert answer.output_text.endswith(SAID)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.endswith(SAID) and events[-1].type == "response.completed"
    sent = [r.body["input"] for r in upstream.requests if r.path == "/v1/responses"]
    assert sent == ["I'm <PERSON_1>, mail <EMAIL_ADDRESS_1> or call <PHONE_NUMBER_1>."] * 2
    recs = records(guard, sink, at_least=2)
    assert [(r["route"], r["stream"], r["decision"]) for r in recs] == [
        ("/v1/responses", False, "redact"), ("/v1/responses", True, "redact")]
    assert_no_pii([r.body for r in upstream.requests], recs)


async def test_async_responses_tool_call_stream_restores_arguments(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    async with openai.AsyncOpenAI(base_url=upstream.base_url, api_key="k", max_retries=0) as plain:
        client = guard.wrap(plain)
        answer = await client.responses.create(model="gpt-4o-mini", input=SAID, tools=TOOLS)
        stream = await client.responses.create(model="gpt-4o-mini", input=SAID, tools=TOOLS,
                                               stream=True)
        events = [e async for e in stream]
    assert json.loads(answer.output[0].arguments) == {"to": SAID}  # type: ignore[union-attr]
    streamed = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(streamed) == {"to": SAID}
    recs = records(guard, sink, at_least=2)
    assert [r["stream"] for r in recs] == [False, True]
    assert_no_pii([r.body for r in upstream.requests], recs)


async def test_wrapped_embeddings_are_masked_sync_and_async(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    with openai.OpenAI(base_url=upstream.base_url, api_key="k", max_retries=0) as plain:
        guard.wrap(plain).embeddings.create(model="text-embedding-3-small", input=PII[0])
    async with openai.AsyncOpenAI(base_url=upstream.base_url, api_key="k", max_retries=0) as aplain:
        result = await guard.wrap(aplain).embeddings.create(model="text-embedding-3-small",
                                                             input=[PII[1], "plain"])
    assert len(result.data) == 2
    sent = [r.body["input"] for r in upstream.requests if r.path == "/v1/embeddings"]
    assert sent == ["[PERSON]", ["[EMAIL_ADDRESS]", "plain"]]
    recs = records(guard, sink, at_least=2)
    assert [r["route"] for r in recs] == ["/v1/embeddings"] * 2
    assert_no_pii([r.body for r in upstream.requests], recs)
