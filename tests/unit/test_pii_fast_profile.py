"""The ``fast`` profile and triggers: texts with nothing a pattern needs are skipped whole."""

from __future__ import annotations

from typing import Any

from guard.pii import PiiDetector
from guard.pii.triggers import all_triggered, may_contain, trigger_pieces
from guard.policy import parse_policy

PATTERNS = {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS"}


def test_prose_without_digits_or_at_signs_cannot_hold_pattern_entities() -> None:
    assert not may_contain("Please summarise the attached report for Jane Doe.", PATTERNS)
    assert may_contain("write to jane@example.com", PATTERNS)
    assert may_contain("call 555 0142", PATTERNS)
    assert may_contain("full-width \uff10\uff17\uff17\uff10\uff10", PATTERNS)  # 07700 in full width
    assert may_contain("split 4\u200b1\u200b1\u200b1 digits", PATTERNS)
    assert may_contain("jane [at] example dot com", PATTERNS)


def test_entities_without_a_trigger_are_always_analysed() -> None:
    assert not all_triggered({"EMAIL_ADDRESS", "PERSON"})
    assert may_contain("no digits here", {"EMAIL_ADDRESS", "PERSON"})


def test_trigger_pieces_cover_each_value_with_room_to_spare_and_never_overlap() -> None:
    filler = "The quarterly review went well and the team agreed on next steps. " * 40
    text = filler + "Reach me at ana.silva@example.org today. " + filler + "Card 4111 1111 1111 1111."
    pieces = trigger_pieces(text, PATTERNS)
    assert len(pieces) == 2
    assert "ana.silva@example.org" in pieces[0].text and "4111 1111 1111 1111" in pieces[1].text
    assert pieces[0].offset + len(pieces[0].text) < pieces[1].offset
    assert sum(len(p.text) for p in pieces) < len(text) / 5


def test_pattern_entities_in_a_long_text_are_found_at_their_offsets(detector: PiiDetector) -> None:
    filler = "Nothing personal is written in this sentence at all, it is just filler. " * 50
    text = f"{filler}Mail ana.silva@example.org or call +1 415 555 0199.{filler}SSN 536-22-7614."
    detector.cache.clear()
    found = [(text[s.start:s.end], s.label) for s in detector.analyze(text, PATTERNS, 0.5)]
    assert found == [("ana.silva@example.org", "EMAIL_ADDRESS"), ("+1 415 555 0199", "PHONE_NUMBER"),
                     ("536-22-7614", "US_SSN")]


def test_the_fast_profile_leaves_names_and_places_out() -> None:
    policy = parse_policy("name: quick\npii: {profile: fast}\n", source="quick.yaml")
    assert set(policy.pii.detected_entities) == PATTERNS
    assert "PERSON" in parse_policy("name: full\n", source="full.yaml").pii.detected_entities


async def test_a_fast_guard_redacts_patterns_and_keeps_names(make_guard: Any) -> None:
    guard, _ = make_guard("name: quick\npii: {profile: fast}\n")
    async with guard.call(route="test") as call:
        verdict = await call.check_request({"model": "m", "messages": [
            {"role": "user", "content": "I am Jane Doe from Paris, jane@example.com, +1 212 555 0142"}]})
    assert verdict.body["messages"][0]["content"] == (
        "I am Jane Doe from Paris, <EMAIL_ADDRESS_1>, <PHONE_NUMBER_1>")


def test_an_unknown_profile_is_a_clear_policy_error() -> None:
    import pytest

    from guard.errors import PolicyError

    with pytest.raises(PolicyError, match="profile") as caught:
        parse_policy("name: x\npii: {profile: quick}\n", source="x.yaml")
    assert "fast" in str(caught.value) and "accurate" in str(caught.value)
