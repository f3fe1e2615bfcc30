"""Where the model reads and writes text in Responses API and embeddings bodies, and which
route speaks which format."""

from __future__ import annotations

import json

import pytest

from guard.errors import WireFormatError
from guard.wire import API_ROUTES, api_for_route, wire_format
from guard.wire import embeddings as emb
from guard.wire import responses as resp
from guard.wire.slots import replace_texts


def test_string_input_and_instructions_are_extracted_with_their_roles() -> None:
    body = {"model": "gpt-4o-mini", "instructions": "Be brief.", "input": "I'm Ann."}
    extraction = resp.extract_request(body)
    assert [(s.param, s.text) for s in extraction.texts] == [
        ("instructions", "Be brief."), ("input", "I'm Ann.")]
    assert [resp.role_of(body, s) for s in extraction.texts] == ["system", "user"]


def test_item_list_parts_tool_output_and_images_are_extracted_in_order() -> None:
    args = json.dumps({"to": "ann@example.com", "n": 2})
    body = {"input": [
        {"role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": "https://example.com/a.png"},
            {"type": "input_image", "file_id": "file-1"}]},
        {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "A cat.", "annotations": []}]},
        {"type": "function_call", "call_id": "c1", "name": "send", "arguments": args},
        {"type": "function_call_output", "call_id": "c1", "output": "sent to ann@example.com"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
    ]}
    extraction = resp.extract_request(body)
    assert [(s.param, s.json_path, s.text) for s in extraction.texts] == [
        ("input[0].content[0].text", None, "What is this?"),
        ("input[1].content[0].text", None, "A cat."),
        ("input[2].arguments", ("to",), "ann@example.com"),
        ("input[3].output", None, "sent to ann@example.com"),
    ]
    assert [resp.role_of(body, s) for s in extraction.texts] == [
        "user", "assistant", "assistant", "tool"]
    assert extraction.images == ("https://example.com/a.png",)
    assert [(i.param, i.file_id) for i in extraction.image_inputs] == [
        ("input[0].content[1].image_url", None), ("input[0].content[2].file_id", "file-1")]
    changed = replace_texts(body, {extraction.texts[2]: "<EMAIL_ADDRESS_1>",
                                   extraction.texts[3]: "sent to <EMAIL_ADDRESS_1>"})
    assert json.loads(changed["input"][2]["arguments"]) == {"to": "<EMAIL_ADDRESS_1>", "n": 2}
    assert changed["input"][3]["output"] == "sent to <EMAIL_ADDRESS_1>"
    assert body["input"][3]["output"] == "sent to ann@example.com", "the original is not modified"


def test_prompt_variables_are_text_the_model_reads() -> None:
    body = {"prompt": {"id": "pmpt_1", "variables": {
        "name": "Ann Lee", "note": {"type": "input_text", "text": "mail ann@example.com"}}}}
    slots = resp.extract_request(body).texts
    assert [(s.param, s.text) for s in slots] == [
        ("prompt.variables.name", "Ann Lee"), ("prompt.variables.note.text", "mail ann@example.com")]
    changed = replace_texts(body, {slots[1]: "mail <EMAIL_ADDRESS_1>"})
    assert changed["prompt"]["variables"]["note"]["text"] == "mail <EMAIL_ADDRESS_1>"


@pytest.mark.parametrize(("body", "param"), [
    ({"input": 5}, "input"),
    ({"input": ["hi"]}, "input[0]"),
    ({"input": [{"content": "no role"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": [{"text": "no type"}]}]}, "input[0].content[0]"),
    ({"input": "x", "instructions": ["no"]}, "instructions"),
])
def test_wrong_responses_shapes_raise_with_the_offending_param(body: object, param: str) -> None:
    with pytest.raises(WireFormatError) as info:
        resp.extract_request(body)
    assert info.value.param == param


def test_output_messages_and_function_call_arguments_are_checked_and_withheld() -> None:
    body = {"id": "resp_1", "status": "completed", "output": [
        {"type": "reasoning", "id": "rs", "summary": []},
        {"type": "message", "id": "msg_1", "role": "assistant", "content": [
            {"type": "output_text", "text": "Hi <PERSON_1>", "annotations": []},
            {"type": "refusal", "refusal": "no"}]},
        {"type": "function_call", "id": "fc_1", "call_id": "c", "name": "f",
         "arguments": '{"email": "<EMAIL_ADDRESS_1>"}'},
    ]}
    slots = resp.extract_response(body)
    assert [(s.path[1], s.text) for s in slots] == [
        (1, "Hi <PERSON_1>"), (1, "no"), (2, "<EMAIL_ADDRESS_1>")]
    withheld = replace_texts(body, {})
    resp.withhold(withheld, 2, "Withheld.")
    assert withheld["status"] == "incomplete"
    assert withheld["incomplete_details"] == {"reason": "content_filter"}
    assert withheld["output"][2] == {
        "id": "fc_1", "type": "message", "status": "incomplete", "role": "assistant",
        "content": [{"type": "output_text", "text": "Withheld.", "annotations": []}]}
    with pytest.raises(WireFormatError):
        resp.extract_response({"choices": []})


def test_embeddings_strings_are_slots_and_token_ids_are_refused_as_unscannable() -> None:
    assert [s.text for s in emb.extract_request({"input": "Ann Lee"}).texts] == ["Ann Lee"]
    slots = emb.extract_request({"input": ["a", "b"]}).texts
    assert [(s.param, s.text) for s in slots] == [("input[0]", "a"), ("input[1]", "b")]
    for tokens in ([1, 2, 3], [[1, 2], [3]]):
        with pytest.raises(emb.UnscannableInput) as info:
            emb.extract_request({"input": tokens})
        assert info.value.code == "guard.unscannable_input" and info.value.param == "input"
    for bad in ([], ["a", 1], None, [True]):
        with pytest.raises(WireFormatError) as shape:
            emb.extract_request({"input": bad})
        assert shape.value.code is None


def test_routes_pick_the_wire_format_by_their_ending() -> None:
    assert API_ROUTES == {"/v1/chat/completions": "chat", "/v1/responses": "responses",
                          "/v1/embeddings": "embeddings"}
    assert api_for_route("/v1/responses") == "responses"
    assert api_for_route("/openai/deployments/x/chat/completions") == "chat"
    assert api_for_route("/v1/embeddings/") == "embeddings"
    assert api_for_route("/v1/files") is None
    assert wire_format("embeddings").extract_response is None
    with pytest.raises(ValueError, match="known: chat, responses, embeddings"):
        wire_format("batches")
