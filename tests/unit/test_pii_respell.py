"""Undoing obfuscations before detection: what is caught, what is rewritten, what is left."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

from guard.pii import PiiDetector
from guard.pii.normalise import normalise_text
from guard.pii.respell import respell
from tests.conftest import GuardFactory

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.evasion import check, load, rates

CYRILLIC_A, CYRILLIC_O = "\u0430", "\u043e"


def respelled(text: str) -> str:
    return respell(normalise_text(text)).text


@pytest.mark.parametrize(("text", "expected"), [
    ("mail maria [at] example (dot) org now", "mail maria@example.org now"),
    ("mail maria dot lopez at example dot org now", "mail maria.lopez@example.org now"),
    ("call 4 1 5 5 5 5 0 1 3 2 today", "call 4155550132 today"),
    ("to maria%40example.org", "to maria@example.org"),
    (f"m{CYRILLIC_A}ria@ex{CYRILLIC_A}mple.{CYRILLIC_O}rg", "maria@example.org"),
])
def test_obfuscations_are_undone_for_detection(text: str, expected: str) -> None:
    assert respelled(text) == expected


@pytest.mark.parametrize("text", [
    "Meet at 5 (at the cafe).", "version 1.2.3 is out", "\u041f\u0440\u0438\u0432\u0435\u0442",
    "Internationalization matters", "100% sure, 50% off",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert respelled(text) == text


async def test_spelled_shapes_that_are_no_address_are_not_flagged(detector: PiiDetector) -> None:
    texts = ["look at this dot product", "I arrived at nine, dot on time", "aGVsbG8gd29ybGQh is hi"]
    found = await detector.analyze_many(texts, ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD",
                                                "US_SSN", "IBAN_CODE"], 0.5)
    assert found == [[], [], []]


def test_every_respelled_character_maps_into_the_original() -> None:
    text = "write to maria [at] example (dot) org or 4 1 5 5 5 5 0 1 3 2 ok"
    norm = respell(normalise_text(text))
    start = norm.text.index("maria@example.org")
    assert norm.to_original(start, start + len("maria@example.org")) == (
        text.index("maria"), text.index(" org") + 4)
    digits = norm.text.index("4155550132")
    assert norm.to_original(digits, digits + 10) == (text.index("4 1"), text.index(" ok"))


async def test_base64_value_is_redacted_as_a_whole_token(detector: PiiDetector) -> None:
    token = base64.b64encode(b"maria.gonzalez@example.org").decode()
    text = f"Decode {token} please"
    (spans,) = await detector.analyze_many([text], ["EMAIL_ADDRESS"], 0.5)
    assert [(text[s.start:s.end], s.label) for s in spans] == [(token, "EMAIL_ADDRESS")]


async def test_spelled_email_is_replaced_and_restored_exactly(make_guard: GuardFactory) -> None:
    guard, _ = make_guard()
    text = "Please write to maria [at] example (dot) org about it."
    async with guard.call() as call:
        verdict = await call.check_request({"model": "m", "messages": [
            {"role": "user", "content": text}]})
        sent = verdict.body["messages"][0]["content"]
        assert sent == "Please write to <EMAIL_ADDRESS_1> about it."
        assert call.restore(sent) == text


COMMON = ("plain", "zero_width", "bidi", "fullwidth", "homoglyph", "at_dot_brackets",
          "at_dot_words", "json_escape", "base64", "url_encoded")


async def test_common_evasions_are_caught_by_default(make_guard: GuardFactory) -> None:
    guard, _ = make_guard()
    cases = [c for c in load() if c["technique"] in COMMON]
    outcomes = [type("O", (), {"technique": c["technique"], "entity": c["entity"],
                               "caught": await check(guard, c)})() for c in cases]
    table = rates(outcomes, "technique")  # type: ignore[arg-type]
    assert {t: caught / total for t, (caught, total) in table.items()} == dict.fromkeys(COMMON, 1.0)
