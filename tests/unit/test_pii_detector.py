"""The PII detector end to end (spaCy model loaded once per session by ``get_detector``)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import guard.pii.detector as detector_module
import guard.pii.segments as segments_module
from guard.errors import ConfigError
from guard.pii import SUPPORTED_ENTITIES, PiiDetector, get_detector, select_spacy_model
from guard.values import Span

CORE = {
    "PERSON",
    "LOCATION",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IP_ADDRESS",
    "IBAN_CODE",
}


@pytest.fixture(scope="module")
def pii() -> PiiDetector:
    return get_detector()


def found(text: str, spans: list[Span]) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.label) for s in spans]


def test_zero_width_split_email_is_detected_with_original_offsets(pii: PiiDetector) -> None:
    text = "Mail john\u200b@exam\u200bple.com today"
    spans = pii.analyze(text, {"EMAIL_ADDRESS"}, min_score=0.5)
    assert found(text, spans) == [("john\u200b@exam\u200bple.com", "EMAIL_ADDRESS")]


def test_full_width_digits_phone_is_detected(pii: PiiDetector) -> None:
    # "(415) 555-0132" typed in full-width characters
    number = "\uff08\uff14\uff11\uff15\uff09 \uff15\uff15\uff15-\uff10\uff11\uff13\uff12"
    text = f"Call me on {number} please"
    spans = pii.analyze(text, {"PHONE_NUMBER"}, min_score=0.5)
    assert found(text, spans) == [(number, "PHONE_NUMBER")]


def test_overlapping_email_and_url_resolve_to_one_span(pii: PiiDetector) -> None:
    text = "Mail to jane.doe@example.com, call me."
    spans = pii.analyze(text, {"EMAIL_ADDRESS", "URL"})
    assert found(text, spans) == [("jane.doe@example.com", "EMAIL_ADDRESS")]


def test_entities_filter_is_respected(pii: PiiDetector) -> None:
    text = "Jane Doe, jane@example.com, +1 212 555 0142"
    assert {s.label for s in pii.analyze(text, {"PHONE_NUMBER"})} == {"PHONE_NUMBER"}
    assert {s.label for s in pii.analyze(text, {"EMAIL_ADDRESS", "PERSON"})} == {
        "EMAIL_ADDRESS",
        "PERSON",
    }
    assert pii.analyze(text, set()) == []


def test_min_score_is_respected(pii: PiiDetector) -> None:
    text = "The number is 0490 39 07 81."  # phone-shaped, context "number": 0.75
    scores = [s.score for s in pii.analyze(text, {"PHONE_NUMBER"}, min_score=0.0)]
    assert scores and all(0.0 < score < 0.9 for score in scores)
    assert pii.analyze(text, {"PHONE_NUMBER"}, min_score=0.9) == []
    bare = "Ref 0490 39 07 81"  # no phone context: 0.4, under the policy default
    assert pii.analyze(bare, {"PHONE_NUMBER"}, min_score=0.5) == []


def test_unknown_entity_raises_config_error_listing_supported_ones(pii: PiiDetector) -> None:
    with pytest.raises(ConfigError, match=r"PASSPORT_NUMBERZ.*supported: .*EMAIL_ADDRESS"):
        pii.analyze("x", {"PASSPORT_NUMBERZ"})


def test_unknown_model_raises_config_error_naming_installed_models() -> None:
    installed = select_spacy_model("auto")
    with pytest.raises(ConfigError, match=f"no_such_model.*{installed}"):
        PiiDetector("no_such_model")


def test_installed_non_model_package_is_not_accepted_as_a_model() -> None:
    with pytest.raises(ConfigError, match="'numpy' is not installed"):
        select_spacy_model("numpy")


def test_get_detector_shares_one_detector_for_auto_and_its_resolved_name(
    pii: PiiDetector,
) -> None:
    assert get_detector("auto") is pii
    assert get_detector(pii.model_name) is pii
    assert pii.model_name == select_spacy_model()


def test_get_detector_builds_once_under_concurrent_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[str] = []

    class SlowDetector:
        def __init__(self, model: str) -> None:
            time.sleep(0.05)
            built.append(model)

        def warm_up(self) -> None:
            pass

    monkeypatch.setattr(detector_module, "_detectors", {})
    monkeypatch.setattr(detector_module, "PiiDetector", SlowDetector)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(get_detector())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert len({id(r) for r in results}) == 1


def test_default_entities_are_found_at_the_policy_threshold(pii: PiiDetector) -> None:
    text = (
        "Hi, my name is Maria Gonzalez. Mail maria.gonzalez@example.org or call "
        "(415) 555-0132. Card 4111 1111 1111 1111, SSN 536-22-7614, "
        "IBAN DE89 3704 0044 0532 0130 00, from 192.168.12.34. "
        "Ship to 1600 Main Street, Springfield, IL 62704."
    )
    got = found(text, pii.analyze(text, CORE, min_score=0.5))
    assert got == [
        ("Maria Gonzalez", "PERSON"),
        ("maria.gonzalez@example.org", "EMAIL_ADDRESS"),
        ("(415) 555-0132", "PHONE_NUMBER"),
        ("4111 1111 1111 1111", "CREDIT_CARD"),
        ("536-22-7614", "US_SSN"),
        ("DE89 3704 0044 0532 0130 00", "IBAN_CODE"),
        ("192.168.12.34", "IP_ADDRESS"),
        ("1600 Main Street, Springfield, IL 62704", "LOCATION"),
    ]


def test_text_outside_spans_survives_rewriting_byte_for_byte(pii: PiiDetector) -> None:
    text = "\u202eDear Ana\u202c,\nmail ana\u200b@example.com\u00a0or \ufb01le it. \U0001f600"
    spans = pii.analyze(text, CORE, min_score=0.5)
    assert found(text, spans) == [("Ana", "PERSON"), ("ana\u200b@example.com", "EMAIL_ADDRESS")]
    pieces, at = [], 0
    for s in spans:
        pieces += [text[at : s.start], f"<{s.label}>"]
        at = s.end
    rewritten = "".join([*pieces, text[at:]])
    expected = "\u202eDear <PERSON>\u202c,\nmail <EMAIL_ADDRESS>\u00a0or \ufb01le it. \U0001f600"
    assert rewritten == expected


def test_spans_are_sorted_non_overlapping_and_inside_the_text(pii: PiiDetector) -> None:
    text = (
        "Jane Smith (jane@smith.io, +44 7700 900123) moved from 22 Baker Street, London NW1 6XE "
        "to Via Roma 12, Torino. Her card: 5425 2334 3010 9903."
    )
    spans = pii.analyze(text, SUPPORTED_ENTITIES)
    assert spans == sorted(spans, key=lambda s: s.start)
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))
    assert all(0 <= s.start < s.end <= len(text) for s in spans)


def test_empty_input_gives_no_spans(pii: PiiDetector) -> None:
    assert pii.analyze("", CORE) == []
    assert pii.analyze_batch([], CORE) == []
    assert asyncio.run(pii.analyze_many([], CORE)) == []


def test_analyze_many_returns_what_analyze_returns_per_text(pii: PiiDetector) -> None:
    texts = ["Call Jane on 212-555-0142", "nothing here", "card 4111-1111-1111-1111"]
    many = asyncio.run(pii.analyze_many(texts, CORE, 0.5))
    assert many == [pii.analyze(t, CORE, 0.5) for t in texts]


def test_analyze_many_does_not_block_the_event_loop(pii: PiiDetector) -> None:
    long_text = "My name is Jane Doe and I live at 12 Main Street, Springfield. " * 400

    async def main() -> tuple[int, float, int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.create_task(ticker())
        started = time.perf_counter()
        spans = await pii.analyze_many([long_text], {"PERSON", "LOCATION"})
        elapsed = time.perf_counter() - started
        stop.set()
        await task
        return ticks, elapsed, len(spans[0])

    ticks, elapsed, n_spans = asyncio.run(main())
    assert n_spans > 0
    # A blocked loop would tick once; a free one ticks about every 5 ms of the analysis.
    assert elapsed > 0.05
    assert ticks >= 0.25 * elapsed / 0.005


def test_concurrent_analysis_gives_the_same_spans_as_sequential(pii: PiiDetector) -> None:
    texts = [
        f"{name} ({name.split()[0].lower()}@example.com, +1 212 555 01{i:02d}) lives at "
        f"{i + 10} Main Street, Springfield."
        for i, name in enumerate(["Jane Doe", "Ana Silva", "Kenji Sato", "Olu Adeyemi"] * 10)
    ]
    pii.cache.clear()
    sequential = [pii.analyze(t, CORE, 0.5) for t in texts]
    pii.cache.clear()  # analysed again, concurrently, not answered from the cache
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda t: pii.analyze(t, CORE, 0.5), texts))
    assert concurrent == sequential


def test_long_text_is_analysed_in_segments_with_offsets_into_the_original(
    pii: PiiDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        f"Line {i}: write to user{i}\u200b@example.com or call +1 212 555 01{i:02d}.\n" for i in range(30)
    ]
    text = "".join(lines)
    whole = pii.analyze(text, CORE, 0.5)
    monkeypatch.setattr(detector_module, "MAX_SEGMENT", 200)
    assert len(segments_module.split_pieces(text, 200)) >= 10
    pii.cache.clear()
    assert pii.analyze(text, CORE, 0.5) == whole
    assert [text[s.start : s.end] for s in whole][:2] == [
        "user0\u200b@example.com",
        "+1 212 555 0100",
    ]
