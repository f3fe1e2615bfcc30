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
