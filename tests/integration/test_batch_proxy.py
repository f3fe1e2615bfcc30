"""The proxy's Batch API routes with the official SDK: upload, batch, results — guarded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from guard.proxy import create_app
from guard.testing import FakeUpstream, LoopbackServer
from tests.integration.conftest import ProxyFactory
from tests.support.batch import SSN, UNSUPPORTED_URL, batch_case, echo, response_echo
from tests.support.sdk import assert_no_pii, records, reply_with

KEY = "batch-key-for-tests-0123456789"


def sdk(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key="sk-client", max_retries=0, timeout=600)


def jsonl(lines: list[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


def by_custom_id(content: str) -> dict[str, dict[str, Any]]:
    return {obj["custom_id"]: obj for obj in map(json.loads, content.splitlines())}


def chat_line(custom_id: str, text: str) -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": "gpt-4o-mini",
                                "messages": [{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": text}]}})


def test_thousand_line_batch_is_redacted_on_upload_and_restored_on_download(
        proxy: ProxyFactory, upstream: FakeUpstream, tmp_path: Path) -> None:
    case = batch_case(1000)
    base_url, guard, sink = proxy(batch_key=KEY, batch_dir=tmp_path / "maps")
    client = sdk(base_url)

    uploaded = client.files.create(file=("requests.jsonl", jsonl(case.lines)), purpose="batch")
    received = upstream.files[uploaded.id].content.decode()
    assert_no_pii(received, values=case.pii)
    sent = by_custom_id(received)
    assert set(sent) == case.answered, "withheld lines are not uploaded"
    assert UNSUPPORTED_URL not in received
    assert "<EMAIL_ADDRESS_1>" in received and "<PHONE_NUMBER_1>" in received
    for custom_id in case.responses:
        assert "<EMAIL_ADDRESS_1>" in json.dumps(sent[custom_id]["body"]["input"])

    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id is not None
    assert_no_pii(upstream.files[done.output_file_id].content.decode(), values=case.pii)

    upstream_results = by_custom_id(upstream.files[done.output_file_id].content.decode())
    results = by_custom_id(client.files.content(done.output_file_id).text)
    assert set(results) == case.answered | set(case.blocked), "no custom_id goes missing"
    for custom_id, text in case.texts.items():
        answer = results[custom_id]["response"]["body"]["choices"][0]["message"]["content"]
        assert answer == echo(text)
    for custom_id, text in case.responses.items():
        (item,) = results[custom_id]["response"]["body"]["output"]
        assert item["content"][0]["text"] == response_echo(text)
    for custom_id in case.embeddings:  # vectors carry no text: nothing restored into them
        body = results[custom_id]["response"]["body"]
        assert body == upstream_results[custom_id]["response"]["body"]
        assert [d["index"] for d in body["data"]] == [0, 1]
    for custom_id, code in case.blocked.items():
        assert results[custom_id]["response"] is None
        assert results[custom_id]["error"]["code"] == code

    (maps_file,) = (tmp_path / "maps").glob("*.maps")
    raw_maps = maps_file.read_bytes()
    assert not any(value.encode() in raw_maps for value in case.pii)
    assert maps_file.stat().st_mode & 0o077 == 0

    trail = records(guard, sink, at_least=len(case.lines) + len(case.answered))
    assert_no_pii(trail, values=case.pii)
    requests = [r for r in trail if r.get("batch", {}).get("phase") == "request"]
    answers = [r for r in trail if r.get("batch", {}).get("phase") == "result"]
    assert sorted(r["batch"]["line"] for r in requests) == list(range(1, 1001))
    assert {r["batch"]["input_file"] for r in requests} == {uploaded.id}
    assert len({r["batch"]["ref"] for r in requests + answers}) == 1
    assert len(answers) == len(case.answered)
    assert {(r["batch"]["input_file"], r["batch"]["output_file"], r["batch"]["batch_id"])
            for r in answers} == {(uploaded.id, done.output_file_id, batch.id)}
    by_line = {r["batch"]["line"]: r for r in requests}
    blocked_lines = [r for r in requests if r["decision"] == "block"]
    assert len(blocked_lines) == len(case.blocked)
    assert {r["code"] for r in blocked_lines} == set(case.blocked.values())
    assert all(by_line[r["batch"]["line"]]["decision"] == "redact" for r in answers)
    assert all(r["usage"] is not None for r in answers)


def test_an_answer_the_output_rules_block_is_replaced_and_recorded(
        proxy: ProxyFactory, upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.reply = reply_with("Sure, the card on file is 4111 1111 1111 1111.")
    base_url, guard, sink = proxy(batch_key=KEY, batch_dir=tmp_path)
    client = sdk(base_url)
    uploaded = client.files.create(
        file=("b.jsonl", jsonl([chat_line("a", "Which card do I use, I'm Maria Gonzalez?")])),
        purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    output = client.batches.retrieve(batch.id).output_file_id
    assert output is not None
    (line,) = by_custom_id(client.files.content(output).text).values()
    choice = line["response"]["body"]["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] == "The answer contained payment data and was withheld."
    (result,) = [r for r in records(guard, sink, at_least=2) if r["batch"]["phase"] == "result"]
    assert result["decision"] == "block"
    assert result["output_rules"] == [{"id": "no-payment-data", "action": "block"}]


def test_without_a_batch_key_uploads_are_refused_and_nothing_goes_upstream(
        proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    base_url, _, _ = proxy()
    with pytest.raises(openai.APIStatusError) as info:
        sdk(base_url).files.create(file=("b.jsonl", jsonl([chat_line("a", "Hi, I'm Maria.")])),
                                   purpose="batch")
    assert info.value.status_code == 503
    assert info.value.code == "guard.batch_key_missing"
    assert "GUARD_BATCH_KEY" in info.value.message
    assert upstream.files == {}


def test_a_file_with_bad_lines_is_refused_naming_each_line(
        proxy: ProxyFactory, upstream: FakeUpstream, tmp_path: Path) -> None:
    base_url, _, _ = proxy(batch_key=KEY, batch_dir=tmp_path)
    lines = [chat_line("a", "fine"), '{"custom_id": "b", "method": "POST", "url": "/v1/chat/',
             json.dumps({"custom_id": "a", "method": "GET", "url": "/v1/chat/completions",
                         "body": {"messages": [{"role": "user", "content": f"SSN {SSN}"}]}})]
    with pytest.raises(openai.BadRequestError) as info:
        sdk(base_url).files.create(file=("b.jsonl", jsonl(lines)), purpose="batch")
    message = info.value.message
    assert info.value.code == "guard.batch_invalid_file"
    assert "line 2: not valid JSON" in message
    assert "line 3: 'custom_id' repeats the one on line 1" in message
    assert "line 3: 'method' must be \"POST\"" in message
    assert SSN not in message
    assert upstream.files == {}


def test_a_batch_whose_input_file_bypassed_guard_is_refused(
        proxy: ProxyFactory, upstream: FakeUpstream, tmp_path: Path) -> None:
    base_url, _, _ = proxy(batch_key=KEY, batch_dir=tmp_path)
    direct = sdk(upstream.base_url).files.create(
        file=("b.jsonl", jsonl([chat_line("a", "Hi, I'm Maria Gonzalez.")])), purpose="batch")
    with pytest.raises(openai.BadRequestError) as info:
        sdk(base_url).batches.create(input_file_id=direct.id, endpoint="/v1/chat/completions",
                                     completion_window="24h")
    assert info.value.code == "guard.batch_unguarded_file"
    assert upstream.batches == {}
    with pytest.raises(openai.NotFoundError) as missing:
        sdk(base_url).files.content(direct.id)
    assert missing.value.code == "guard.batch_unlinked"


def test_results_with_a_different_key_are_withheld_with_a_clear_error(
        make_guard: Any, upstream: FakeUpstream, tmp_path: Path) -> None:
    def serve(key: str) -> LoopbackServer:
        guard, _ = make_guard(moderation_provider=None, upstream_url=upstream.base_url)
        return LoopbackServer(create_app(guard, upstream_url=upstream.base_url, batch_key=key,
                                         batch_dir=tmp_path), lifespan="on")

    with serve(KEY) as first:
        client = sdk(f"{first.url}/v1")
        uploaded = client.files.create(file=("b.jsonl", jsonl([chat_line("a", "I'm Maria.")])),
                                       purpose="batch")
        batch = client.batches.create(input_file_id=uploaded.id,
                                      endpoint="/v1/chat/completions", completion_window="24h")
        output = client.batches.retrieve(batch.id).output_file_id
        assert output is not None
    with serve("a-different-key-0123456789") as second, pytest.raises(openai.InternalServerError) as info:
        sdk(f"{second.url}/v1").files.content(output)
    assert info.value.code == "guard.batch_maps_unreadable"
    assert "GUARD_BATCH_KEY" in info.value.message


def test_other_upload_purposes_are_refused_unless_files_pass_through(
        proxy: ProxyFactory, upstream: FakeUpstream, tmp_path: Path) -> None:
    guarded, _, _ = proxy(batch_key=KEY, batch_dir=tmp_path)
    with pytest.raises(openai.BadRequestError) as info:
        sdk(guarded).files.create(file=("notes.txt", b"Maria Gonzalez"), purpose="assistants")
    assert info.value.code == "guard.unsupported_purpose"
    assert upstream.files == {}
    opened, _, _ = proxy(batch_key=KEY, batch_dir=tmp_path, passthrough=["/v1/files"])
    stored = sdk(opened).files.create(file=("notes.txt", b"plain notes"), purpose="assistants")
    assert upstream.files[stored.id].content == b"plain notes"
