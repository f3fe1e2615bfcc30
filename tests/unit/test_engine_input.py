"""The input side of the engine: what goes upstream, and what the audit record says."""

from __future__ import annotations

import json

from guard.engine import Guard
from tests.conftest import GuardFactory
from tests.support.bodies import chat

EMAIL = "maria.gonzalez@example.org"


async def check(guard: Guard, body: dict) -> tuple:  # type: ignore[type-arg]
    async with guard.call(api_key="sk-test-key-123") as call:
        verdict = await call.check_request(body)
    return verdict, call


async def test_name_email_phone_and_card_are_pseudonymised(make_guard: GuardFactory) -> None:
    guard, _ = make_guard()
    text = (f"I'm Maria Gonzalez, mail {EMAIL} or call (415) 555-0132; "
            "card 4111 1111 1111 1111.")
    verdict, _ = await check(guard, chat(text))
    sent = verdict.body["messages"][0]["content"]
    assert verdict.decision == "redact"
    assert sent == ("I'm <PERSON_1>, mail <EMAIL_ADDRESS_1> or call <PHONE_NUMBER_1>; "
                    "card <CREDIT_CARD_1>.")
    assert dict(verdict.entities) == {"PERSON": 1, "EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1,
                                      "CREDIT_CARD": 1}


async def test_same_email_in_three_messages_gets_one_placeholder(make_guard: GuardFactory) -> None:
    guard, _ = make_guard()
    body = chat(f"My email is {EMAIL}.", f"Noted: {EMAIL}.", f"Send it to {EMAIL.upper()} now.")
    verdict, _ = await check(guard, body)
    sent = [m["content"] for m in verdict.body["messages"]]
    assert sent == ["My email is <EMAIL_ADDRESS_1>.", "Noted: <EMAIL_ADDRESS_1>.",
                    "Send it to <EMAIL_ADDRESS_1> now."]


async def test_different_values_are_numbered_by_first_appearance(make_guard: GuardFactory) -> None:
    guard, _ = make_guard()
    body = chat("Write to b@example.com and a@example.com.", "Also a@example.com?")
    verdict, _ = await check(guard, body)
    assert [m["content"] for m in verdict.body["messages"]] == [
        "Write to <EMAIL_ADDRESS_1> and <EMAIL_ADDRESS_2>.", "Also <EMAIL_ADDRESS_2>?"]


async def test_email_split_by_zero_width_space_is_still_found(make_guard: GuardFactory) -> None:
    guard, _ = make_guard()
    verdict, _ = await check(guard, chat("Reach me at maria\u200b.gonzalez@exam\u200bple.org thanks"))
    assert verdict.body["messages"][0]["content"] == "Reach me at <EMAIL_ADDRESS_1> thanks"


async def test_text_around_pii_is_forwarded_byte_for_byte(make_guard: GuardFactory) -> None:
    guard, _ = make_guard()
    text = "\uff26\uff55\uff4c\uff4c-width\u00a0text\r\n\tand\u200b zero-width, then " + EMAIL + " ✓"
    verdict, _ = await check(guard, chat(text))
    assert verdict.body["messages"][0]["content"] == text.replace(EMAIL, "<EMAIL_ADDRESS_1>")


async def test_tool_call_arguments_stay_valid_json_after_redaction(make_guard: GuardFactory) -> None:
    guard, _ = make_guard()
    arguments = json.dumps({"to": EMAIL, "subject": "Hello", "tags": ["x", EMAIL], "n": 2})
    body = {"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": f"Email {EMAIL} please"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "send_email", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": f"sent to {EMAIL}"},
    ]}
    verdict, _ = await check(guard, body)
    sent_args = verdict.body["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent_args) == {"to": "<EMAIL_ADDRESS_1>", "subject": "Hello",
                                     "tags": ["x", "<EMAIL_ADDRESS_1>"], "n": 2}
    assert verdict.body["messages"][2]["content"] == "sent to <EMAIL_ADDRESS_1>"
    assert verdict.body["messages"][1]["tool_calls"][0]["function"]["name"] == "send_email"


async def test_blocked_entity_blocks_without_saying_the_value(make_guard: GuardFactory) -> None:
    guard, _ = make_guard()
    verdict, _ = await check(guard, chat("My SSN is 536-22-7614."))
    assert verdict.blocked and verdict.code == "guard.pii"
    assert "US_SSN" in (verdict.message or "") and "536" not in (verdict.message or "")


async def test_mask_action_writes_the_type_and_cannot_be_restored(make_guard: GuardFactory) -> None:
    guard, _ = make_guard("version: 1\nname: m\npii: {action: mask}\n")
    verdict, _ = await check(guard, chat(f"Mail {EMAIL}"))
    assert verdict.body["messages"][0]["content"] == "Mail [EMAIL_ADDRESS]"


async def test_allow_listed_value_is_kept(make_guard: GuardFactory) -> None:
    guard, _ = make_guard("version: 1\nname: a\npii: {allow: ['Support@Example.com']}\n")
    verdict, _ = await check(guard, chat("Write to support@example.com or " + EMAIL))
    assert verdict.body["messages"][0]["content"] == (
        "Write to support@example.com or <EMAIL_ADDRESS_1>")


async def test_monitor_mode_forwards_the_original_and_records_the_would_be_decision(
        make_guard: GuardFactory) -> None:
    guard, sink = make_guard("version: 1\nname: mon\nmode: monitor\n")
    body = chat(f"Mail {EMAIL}")
    verdict, _ = await check(guard, body)
    assert verdict.body == body and not verdict.blocked
    guard.close()
    (record,) = sink.records
    assert record["mode"] == "monitor" and record["decision"] == "redact"
    assert record["input_entities"] == {"EMAIL_ADDRESS": 1}


async def test_monitor_mode_does_not_block_but_records_block(make_guard: GuardFactory) -> None:
    guard, sink = make_guard("version: 1\nname: mon\nmode: monitor\npii: {per_entity: {US_SSN: block}}\n")
    body = chat("SSN 536-22-7614")
    verdict, _ = await check(guard, body)
    assert not verdict.blocked and verdict.body == body
    guard.close()
    assert sink.records[0]["decision"] == "block" and sink.records[0]["status"] == "ok"


async def test_image_parts_are_kept_in_the_forwarded_body(make_guard: GuardFactory) -> None:
    guard, _ = make_guard()
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
        {"type": "text", "text": f"Who is this? Mail {EMAIL}"}, image]}]}
    verdict, _ = await check(guard, body)
    parts = verdict.body["messages"][0]["content"]
    assert parts[1] == image
    assert parts[0]["text"] == "Who is this? Mail <EMAIL_ADDRESS_1>"


async def test_one_audit_record_per_call_with_counts_and_no_values(make_guard: GuardFactory) -> None:
    guard, sink = make_guard()
    await check(guard, chat(f"I'm Maria Gonzalez, {EMAIL}"))
    guard.close()
    (record,) = sink.records
    assert record["event"] == "guard.request"
    assert record["decision"] == "redact" and record["status"] == "ok"
    assert record["input_entities"] == {"PERSON": 1, "EMAIL_ADDRESS": 1}
    assert record["policy"]["name"] == "default" and len(record["policy"]["sha256"]) == 64
    assert record["principal"].startswith("key:") and "sk-test" not in json.dumps(record)
    dumped = json.dumps(record)
    assert "Maria" not in dumped and EMAIL not in dumped and "<EMAIL_ADDRESS_1>" not in dumped


async def test_a_failing_call_still_writes_its_record(make_guard: GuardFactory) -> None:
    guard, sink = make_guard()
    try:
        async with guard.call() as call:
            await call.check_request(chat("hello"))
            raise RuntimeError("upstream exploded")
    except RuntimeError:
        pass
    guard.close()
    (record,) = sink.records
    assert record["status"] == "error" and record["error"] == "RuntimeError"
