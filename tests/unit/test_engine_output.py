"""The output side: rules, restoring placeholders, usage and cost in the record."""

from __future__ import annotations

import json
from typing import Any

from guard.engine import Guard
from tests.conftest import GuardFactory
from tests.support.bodies import answer, chat

RULES = """
version: 1
name: rules
output:
  rules:
    - id: no-api-keys
      when: {regex: 'sk-(proj-)?[A-Za-z0-9_-]{20,}'}
      action: redact
    - id: no-payment-data
      when: {pii: [CREDIT_CARD]}
      action: block
      message: The answer contained payment data and was withheld.
    - id: competitors
      when: {keywords: [globex, initech]}
      action: warn
    - id: short
      when: {max_chars: 200}
      action: redact
"""


async def round_trip(guard: Guard, request: dict[str, Any], response: dict[str, Any]) -> Any:
    async with guard.call() as call:
        await call.check_request(request)
        return await call.check_response(response)


async def test_placeholders_in_the_answer_are_restored(make_guard: GuardFactory) -> None:
    guard, _ = make_guard()
    out = await round_trip(guard, chat("Please greet Maria Gonzalez at maria@example.org"),
                           answer("Hello <PERSON_1>! I wrote to <EMAIL_ADDRESS_1>."))
    assert out.body["choices"][0]["message"]["content"] == (
        "Hello Maria Gonzalez! I wrote to maria@example.org.")


async def test_placeholders_in_answer_tool_arguments_are_restored(make_guard: GuardFactory) -> None:
    guard, _ = make_guard()
    call_args = json.dumps({"to": "<EMAIL_ADDRESS_1>"})
    response = answer("", tool_calls=[{"id": "c1", "type": "function",
                                       "function": {"name": "send", "arguments": call_args}}])
    response["choices"][0]["message"]["content"] = None
    out = await round_trip(guard, chat("Email maria@example.org"), response)
    restored = out.body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(restored) == {"to": "maria@example.org"}


async def test_restored_user_values_are_not_redacted_again(make_guard: GuardFactory) -> None:
    guard, _ = make_guard(RULES)
    out = await round_trip(guard, chat("My card is 4111 1111 1111 1111, is it valid?"),
                           answer("Card <CREDIT_CARD_1> looks valid."))
    assert out.decision == "allow"
    assert out.body["choices"][0]["message"]["content"] == "Card 4111 1111 1111 1111 looks valid."


async def test_regex_rule_redacts_the_match(make_guard: GuardFactory) -> None:
    guard, _ = make_guard(RULES)
    out = await round_trip(guard, chat("key?"),
                           answer("Use sk-proj-abcdefghijklmnopqrstuvwx now."))
    assert out.body["choices"][0]["message"]["content"] == "Use [REDACTED:no-api-keys] now."
    assert out.decision == "redact"


async def test_pii_rule_blocks_with_message_and_content_filter(make_guard: GuardFactory) -> None:
    guard, _ = make_guard(RULES)
    out = await round_trip(guard, chat("card?"), answer("It is 5500 0000 0000 0004."))
    choice = out.body["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] == "The answer contained payment data and was withheld."
    assert out.blocked and [h.rule_id for h in out.rule_hits] == ["no-payment-data"]


async def test_keywords_are_whole_words_and_case_insensitive(make_guard: GuardFactory) -> None:
    guard, _ = make_guard(RULES)
    warned = await round_trip(guard, chat("q"), answer("Unlike GLOBEX, we ship."))
    assert [h.rule_id for h in warned.rule_hits] == ["competitors"]
    assert warned.decision == "warn"
    assert warned.body["choices"][0]["message"]["content"] == "Unlike GLOBEX, we ship."
    clean = await round_trip(guard, chat("q"), answer("Globexian art is old."))
    assert clean.rule_hits == () and clean.decision == "allow"


async def test_max_chars_redacts_the_overflow(make_guard: GuardFactory) -> None:
    guard, _ = make_guard(RULES)
    out = await round_trip(guard, chat("q"), answer("a" * 250))
    assert out.body["choices"][0]["message"]["content"] == "a" * 200 + "[REDACTED:short]"


async def test_monitor_mode_alters_nothing_but_records_the_rules(make_guard: GuardFactory) -> None:
    guard, sink = make_guard(RULES.replace("name: rules", "name: rules\nmode: monitor"))
    response = answer("It is 5500 0000 0000 0004.")
    out = await round_trip(guard, chat("card?"), response)
    assert out.body == response and not out.blocked
    guard.close()
    assert sink.records[0]["decision"] == "block"
    assert sink.records[0]["output_rules"] == [{"id": "no-payment-data", "action": "block"}]


async def test_usage_and_cost_are_recorded(make_guard: GuardFactory) -> None:
    guard, sink = make_guard()
    await round_trip(guard, chat("hi"), answer("hello"))
    guard.close()
    record = sink.records[0]
    assert record["usage"] == {"prompt_tokens": 1000, "completion_tokens": 500}
    # gpt-4o-mini: $0.15 per 1M input tokens, $0.60 per 1M output tokens
    assert record["cost_usd"] == round(1000 * 0.15 / 1e6 + 500 * 0.60 / 1e6, 8)


async def test_model_own_pii_in_answer_is_counted_without_values(make_guard: GuardFactory) -> None:
    guard, sink = make_guard(RULES)
    await round_trip(guard, chat("q"), answer("Card 4111 1111 1111 1111 is a test card."))
    guard.close()
    record = sink.records[0]
    assert record["output_entities"] == {"CREDIT_CARD": 1}
    assert "4111 1111" not in json.dumps(record)  # (a bare "4111" can occur in a hash)
