"""The Responses API through the proxy with the official SDK, over real HTTP: PII redacted
on the way in, restored on the way out, output rules applied — streamed or not, in text and
in function-call arguments."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from guard.testing import FakeUpstream
from tests.integration.conftest import ClientFactory, ProxyFactory
from tests.support.sdk import PII, assert_no_pii, records

SAID = "Hi, I'm Maria Gonzalez, mail maria.gonzalez@example.org or call (415) 555-0132."
TOOLS: Any = [{"type": "function", "name": "send_mail", "parameters": {
    "type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]}}]

RULES = """
version: 1
name: responses-rules
moderation: {input: null}
output:
  streaming: {window_chars: 24, overlap_chars: 10}
  rules:
    - id: competitor
      when: {keywords: [globex]}
      action: block
      message: Let's talk about our own products.
"""


def test_string_input_is_redacted_upstream_and_restored_in_output_text(
        proxy: ProxyFactory, upstream: FakeUpstream,
        openai_client: ClientFactory) -> None:
    base_url, guard, sink = proxy()
    response = openai_client(base_url).responses.create(model="gpt-4o-mini", input=SAID,
                                                        instructions="Answer briefly.")
    sent = upstream.requests[-1]
    assert sent.path == "/v1/responses"
    assert sent.body["input"] == "Hi, I'm <PERSON_1>, mail <EMAIL_ADDRESS_1> or call <PHONE_NUMBER_1>."
    assert sent.body["instructions"] == "Answer briefly."
    assert response.output_text.endswith(SAID)
    (record,) = records(guard, sink)
    assert record["route"] == "/v1/responses" and record["decision"] == "redact"
    assert record["input_entities"] == {"PERSON": 1, "EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}
    assert record["usage"]["prompt_tokens"] > 0 and record["stream"] is False
    assert_no_pii([r.body for r in upstream.requests], record)


def test_streamed_response_restores_placeholders_split_across_deltas(
        proxy: ProxyFactory, upstream: FakeUpstream,
        openai_client: ClientFactory) -> None:
    base_url, guard, sink = proxy(RULES)
    upstream.stream_chunk_chars = 3  # every placeholder arrives in pieces
    stream = openai_client(base_url).responses.create(
        model="gpt-4o-mini", stream=True,
        input=[{"role": "user", "content": [{"type": "input_text", "text": SAID}]}])
    events = list(stream)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.endswith(SAID)
    assert len([e for e in events if e.type == "response.output_text.delta"]) > 1
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == text
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == text
    sent = upstream.requests[-1].body
    assert sent["input"][0]["content"][0]["text"].startswith("Hi, I'm <PERSON_1>")
    (record,) = records(guard, sink)
    assert record["stream"] is True and record["decision"] == "redact" and record["status"] == "ok"
    assert record["usage"]["completion_tokens"] > 0
    assert_no_pii([r.body for r in upstream.requests], record)


@pytest.mark.parametrize("stream", [False, True])
def test_function_call_arguments_come_back_restored(
        proxy: ProxyFactory, upstream: FakeUpstream, openai_client: ClientFactory, stream: bool) -> None:
    base_url, guard, sink = proxy(RULES)
    upstream.stream_chunk_chars = 5
    api = openai_client(base_url)
    ask = "Please mail maria.gonzalez@example.org the invoice."
    if stream:
        events = list(api.responses.create(model="gpt-4o-mini", input=ask, tools=TOOLS,
                                           stream=True))
        streamed = "".join(e.delta for e in events
                           if e.type == "response.function_call_arguments.delta")
        assert json.loads(streamed) == {"to": ask}
        item = events[-1].response.output[0]
    else:
        item = api.responses.create(model="gpt-4o-mini", input=ask, tools=TOOLS).output[0]
    assert item.type == "function_call" and json.loads(item.arguments) == {"to": ask}
    sent = upstream.requests[-1].body
    assert sent["input"] == "Please mail <EMAIL_ADDRESS_1> the invoice."
    (record,) = records(guard, sink)
    assert record["decision"] == "redact" and record["stream"] is stream
    assert_no_pii([r.body for r in upstream.requests], record)


def test_tool_output_and_earlier_calls_in_the_input_are_redacted(
        proxy: ProxyFactory, upstream: FakeUpstream,
        openai_client: ClientFactory) -> None:
    base_url, guard, sink = proxy()
    openai_client(base_url).responses.create(model="gpt-4o-mini", tools=TOOLS, input=[
        {"role": "user", "content": "Who is the customer?"},
        {"type": "function_call", "call_id": "c1", "name": "send_mail",
         "arguments": json.dumps({"to": "maria.gonzalez@example.org"})},
        {"type": "function_call_output", "call_id": "c1",
         "output": "Customer Maria Gonzalez, (415) 555-0132"},
    ])
    sent = upstream.requests[-1].body["input"]
    assert json.loads(sent[1]["arguments"]) == {"to": "<EMAIL_ADDRESS_1>"}
    assert sent[2]["output"] == "Customer <PERSON_1>, <PHONE_NUMBER_1>"
    (record,) = records(guard, sink)
    assert record["input_entities"] == {"EMAIL_ADDRESS": 1, "PERSON": 1, "PHONE_NUMBER": 1}
    assert_no_pii([r.body for r in upstream.requests], record)


def test_output_rule_block_marks_the_response_incomplete_content_filter(
        proxy: ProxyFactory, upstream: FakeUpstream,
        openai_client: ClientFactory) -> None:
    base_url, guard, sink = proxy(RULES)
    response = openai_client(base_url).responses.create(model="gpt-4o-mini",
                                                        input="What do you think of globex?")
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "content_filter"
    assert response.output_text == "Let's talk about our own products."
    (record,) = records(guard, sink)
    assert record["decision"] == "block" and record["output_rules"] == [
        {"id": "competitor", "action": "block"}]


def test_block_mid_stream_ends_with_the_events_of_an_incomplete_response(
        proxy: ProxyFactory, upstream: FakeUpstream,
        openai_client: ClientFactory) -> None:
    base_url, guard, sink = proxy(RULES)
    upstream.stream_chunk_chars = 4
    upstream.stream_delay_s = 0.002
    events = list(openai_client(base_url).responses.create(
        model="gpt-4o-mini", stream=True,
        input="Tell me a long story about the globex corporation and its founders."))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "globex" not in text.lower() and text.endswith("Let's talk about our own products.")
    assert text.startswith("(offline model)"), "text before the match was released in time"
    final = events[-1]
    assert final.type == "response.incomplete"
    assert final.response.incomplete_details is not None
    assert final.response.incomplete_details.reason == "content_filter"
    assert final.response.output_text == text
    (record,) = records(guard, sink)
    assert record["decision"] == "block" and record["stream"] is True


def test_a_stream_cut_before_response_completed_raises_in_the_sdk(
        proxy: ProxyFactory, upstream: FakeUpstream,
        openai_client: ClientFactory) -> None:
    base_url, guard, sink = proxy()
    upstream.stream_break_after = 5
    with pytest.raises(openai.APIError, match="ended before it was complete"):
        list(openai_client(base_url).responses.create(model="gpt-4o-mini", stream=True, input="hello"))
    (record,) = records(guard, sink)
    assert record["status"] == "upstream_error" and record["truncated"] is True


def test_chat_shaped_body_on_responses_gets_a_400_naming_the_field(
        proxy: ProxyFactory, upstream: FakeUpstream,
        openai_client: ClientFactory) -> None:
    base_url, guard, sink = proxy()
    with pytest.raises(openai.BadRequestError) as info:
        openai_client(base_url).post("/responses", cast_to=object, body={
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": PII[1]}]})
    assert info.value.body == {"message": info.value.body["message"], "type": "invalid_request_error",
                               "param": "messages", "code": None}  # type: ignore[index]
    assert not upstream.requests, "nothing unchecked reaches the upstream"
    (record,) = records(guard, sink)
    assert record["status"] == "rejected"
