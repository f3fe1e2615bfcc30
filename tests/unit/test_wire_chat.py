"""Where the model reads and writes text in Chat Completions bodies."""

from __future__ import annotations

import json

import pytest

from guard.errors import WireFormatError
from guard.wire.chat import extract_request, extract_response, replace_texts


def test_string_and_part_contents_are_extracted_in_reading_order() -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "result text"},
        ],
    }
    extraction = extract_request(body)
    assert [s.text for s in extraction.texts] == [
        "Be brief.", "What is in this picture?", "result text"]
    assert extraction.images == ("https://example.com/a.png",)
    assert extraction.texts[1].param == "messages[1].content[0].text"


def test_tool_call_arguments_are_reached_through_their_json() -> None:
    args = json.dumps({"to": "ann@example.com", "cc": ["bob@example.com"], "n": 3})
    body = {"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "send", "arguments": args}}]}]}
    slots = extract_request(body).texts
    assert [(s.json_path, s.text) for s in slots] == [
        (("to",), "ann@example.com"), (("cc", 0), "bob@example.com")]
    changed = replace_texts(body, {slots[0]: "<EMAIL_ADDRESS_1>", slots[1]: "<EMAIL_ADDRESS_2>"})
    new_args = changed["messages"][0]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(new_args) == {"to": "<EMAIL_ADDRESS_1>", "cc": ["<EMAIL_ADDRESS_2>"], "n": 3}
    assert json.loads(args)["to"] == "ann@example.com", "the original body is not modified"


def test_name_fields_and_unknown_fields_are_left_alone() -> None:
    body = {"model": "m", "x_custom": {"deep": [1, 2]}, "messages": [
        {"role": "user", "name": "Alice", "content": "hi", "extra": True}]}
    slots = extract_request(body).texts
    assert [s.text for s in slots] == ["hi"]
    changed = replace_texts(body, {slots[0]: "hello"})
    assert changed == {"model": "m", "x_custom": {"deep": [1, 2]}, "messages": [
        {"role": "user", "name": "Alice", "content": "hello", "extra": True}]}


def test_arguments_that_are_not_json_are_treated_as_text() -> None:
    body = {"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{broken"}}]}]}
    (slot,) = extract_request(body).texts
    assert slot.json_path is None and slot.text == "{broken"


@pytest.mark.parametrize(("body", "param"), [
    ([], None),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"content": "no role"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "messages[0].content[0]"),
])
def test_wrong_shapes_raise_with_the_offending_param(body: object, param: str | None) -> None:
    with pytest.raises(WireFormatError) as info:
        extract_request(body)
    assert info.value.param == param


def test_response_content_and_tool_arguments_are_extracted() -> None:
    body = {"choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi <PERSON_1>"}},
        {"index": 1, "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function",
             "function": {"name": "f", "arguments": '{"email": "<EMAIL_ADDRESS_1>"}'}}]}},
    ]}
    slots = extract_response(body)
    assert [(s.path[1], s.text) for s in slots] == [(0, "Hi <PERSON_1>"), (1, "<EMAIL_ADDRESS_1>")]
