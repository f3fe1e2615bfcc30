"""redact_batch / restore_results over the engine, without HTTP."""

from __future__ import annotations

import json

import pytest

from guard.batch import BatchFileError, parse_requests, parse_results, redact_batch, restore_results
from tests.conftest import GuardFactory


def request(custom_id: str, body: object, url: str = "/v1/chat/completions") -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


async def test_a_body_that_is_not_a_chat_request_is_withheld_naming_the_field(
        make_guard: GuardFactory) -> None:
    guard, sink = make_guard()
    lines = [request("ok", {"messages": [{"role": "user", "content": "Mail ann@example.com"}]}),
             request("bad", {"messages": [{"content": "no role"}]})]
    outcome = await redact_batch(guard, parse_requests(lines))
    outcome.finish(input_file="file-1")
    guard.audit_writer.flush()
    assert [json.loads(line)["custom_id"] for line in outcome.lines] == ["ok"]
    bad = outcome.reports[1]
    assert (bad.decision, bad.code) == ("block", "guard.invalid_line")
    assert bad.reason == ("The body is not a chat completion request: "
                          "messages[0].role must be a string.")
    assert outcome.maps.lines["bad"].withheld == ("guard.invalid_line", bad.reason)
    records = {r["request_id"]: r for r in sink.records}
    assert records[bad.request_id]["decision"] == "block"
    assert records[bad.request_id]["code"] == "guard.invalid_line"
    assert records[bad.request_id]["batch"] == {"ref": outcome.ref, "phase": "request", "line": 2,
                                                "input_file": "file-1"}
    assert "ann@example.com" not in json.dumps(sink.records)


async def test_error_results_pass_on_and_unknown_custom_ids_are_refused(
        make_guard: GuardFactory) -> None:
    guard, sink = make_guard()
    outcome = await redact_batch(guard, parse_requests(
        [request("a", {"messages": [{"role": "user", "content": "Mail ann@example.com"}]})]))
    outcome.finish()
    failed = json.dumps({"custom_id": "a", "response": {"status_code": 429, "body": {
        "error": {"message": "slow down"}}}, "error": None})
    restored = await restore_results(guard, parse_results([failed]), outcome.maps)
    assert json.loads(restored.lines[0])["response"]["status_code"] == 429
    assert restored.reports[0].decision == "upstream_error"
    guard.audit_writer.flush()
    assert sink.records[-1]["status"] == "upstream_error" and sink.records[-1]["error"] == "http_429"

    stranger = json.dumps({"custom_id": "zzz", "response": None, "error": {"code": "x"}})
    with pytest.raises(BatchFileError, match="line 1: its custom_id is not in the maps of batch"):
        await restore_results(guard, parse_results([stranger]), outcome.maps)


def result(custom_id: str, body: object) -> str:
    return json.dumps({"custom_id": custom_id, "response": {"status_code": 200, "body": body},
                       "error": None})


async def test_each_line_is_checked_in_its_urls_format_and_other_urls_are_withheld(
        make_guard: GuardFactory) -> None:
    guard, sink = make_guard()
    lines = [
        request("resp", {"model": "m", "instructions": "Mail ann@example.com",
                         "input": [{"role": "user", "content": "I'm Maria Gonzalez"}]},
                "/v1/responses"),
        request("emb", {"model": "e", "input": ["Mail ann@example.com"]}, "/v1/embeddings"),
        request("tokens", {"model": "e", "input": [[12, 34]]}, "/v1/embeddings"),
        request("chat-shaped", {"messages": [{"role": "user", "content": "hi"}]},
                "/v1/responses"),
        request("legacy", {"model": "m", "prompt": "Mail ann@example.com"}, "/v1/completions"),
    ]
    outcome = await redact_batch(guard, parse_requests(lines))
    outcome.finish()
    guard.audit_writer.flush()
    sent = {json.loads(line)["custom_id"]: json.loads(line)["body"] for line in outcome.lines}
    assert set(sent) == {"resp", "emb"}
    assert sent["resp"]["instructions"] == "Mail <EMAIL_ADDRESS_1>"
    assert sent["resp"]["input"][0]["content"] == "I'm <PERSON_1>"
    assert "ann@example.com" not in json.dumps(sent["emb"])  # masked (pii.embeddings)
    reports = {r.custom_id: r for r in outcome.reports}
    assert (reports["resp"].decision, reports["emb"].decision) == ("redact", "redact")
    assert reports["tokens"].code == "guard.unscannable_input"
    assert reports["chat-shaped"].code == "guard.invalid_line"
    assert reports["chat-shaped"].reason is not None
    assert reports["chat-shaped"].reason.startswith("The body is not a Responses API request: ")
    assert reports["legacy"].code == "guard.unsupported_url"
    assert reports["legacy"].reason is not None and "/v1/responses" in reports["legacy"].reason
    assert outcome.maps.lines["legacy"].withheld is not None
    assert "ann@example.com" not in json.dumps(sink.records)
    assert {r["route"] for r in sink.records} >= {"/v1/responses", "/v1/embeddings",
                                                   "/v1/completions"}


async def test_responses_results_are_checked_and_restored_and_vectors_left_alone(
        make_guard: GuardFactory) -> None:
    guard, _ = make_guard("version: 1\nname: t\nmoderation: {input: null}\n"
                          "pii: {embeddings: pseudonymize}\n"
                          "output:\n  rules:\n    - id: no-cards\n      when: {pii: [CREDIT_CARD]}\n"
                          "      action: block\n      message: Withheld.\n")
    outcome = await redact_batch(guard, parse_requests([
        request("ok", {"model": "m", "input": "Mail ann@example.com"}, "/v1/responses"),
        request("card", {"model": "m", "input": "Mail ann@example.com"}, "/v1/responses"),
        request("emb", {"model": "e", "input": "Mail ann@example.com"}, "/v1/embeddings"),
    ]))
    outcome.finish()
    assert outcome.maps.lines["emb"].placeholders == {"<EMAIL_ADDRESS_1>": "ann@example.com"}

    def answer(text: str) -> dict[str, object]:
        return {"object": "response", "status": "completed", "output": [
            {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": text, "annotations": []}]}]}

    vectors = {"object": "list", "model": "e", "usage": {"prompt_tokens": 3, "total_tokens": 3},
               "data": [{"object": "embedding", "index": 0, "embedding": "<EMAIL_ADDRESS_1>"}]}
    restored = await restore_results(guard, parse_results([
        result("ok", answer("Sent to <EMAIL_ADDRESS_1>.")),
        result("card", answer("Use card 4111 1111 1111 1111.")),
        result("emb", vectors)]), outcome.maps)
    bodies = {json.loads(line)["custom_id"]: json.loads(line)["response"]["body"]
              for line in restored.lines}
    assert bodies["ok"]["output"][0]["content"][0]["text"] == "Sent to ann@example.com."
    blocked = bodies["card"]
    assert blocked["status"] == "incomplete"
    assert blocked["incomplete_details"] == {"reason": "content_filter"}
    assert blocked["output"][0]["content"][0]["text"] == "Withheld."
    assert bodies["emb"] == vectors, "nothing is restored into an embeddings result"
    reports = {r.custom_id: r for r in restored.reports}
    assert (reports["ok"].decision, reports["card"].decision, reports["emb"].decision) == \
        ("allow", "block", "allow")
