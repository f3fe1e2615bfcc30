"""The span cache: resent history is not analysed again, and requests never share a map."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest

from guard.pii import PiiDetector
from guard.pii.cache import SpanCache
from guard.values import Span

EMAIL = {"EMAIL_ADDRESS"}


def test_an_entry_is_found_again_only_for_the_same_text_entities_and_threshold() -> None:
    cache = SpanCache()
    spans = [Span(5, 18, "EMAIL_ADDRESS", 1.0)]
    cache.put("mail a@example.com", EMAIL, 0.5, spans)
    assert cache.get("mail a@example.com", EMAIL, 0.5) == spans
    assert cache.get("mail a@example.com ", EMAIL, 0.5) is None
    assert cache.get("mail a@example.com", {"EMAIL_ADDRESS", "PERSON"}, 0.5) is None
    assert cache.get("mail a@example.com", EMAIL, 0.6) is None


def test_the_cache_holds_no_text_only_keyed_hashes_and_spans() -> None:
    cache = SpanCache()
    text = "Write to jane.doe@example.com about Jane Doe"
    cache.put(text, EMAIL, 0.5, [Span(9, 29, "EMAIL_ADDRESS", 1.0)])
    held = repr(cache._lru.__dict__).encode() + b"".join(cache._lru._entries)
    for value in (b"jane.doe", b"Jane Doe", b"example.com", b"Write to"):
        assert value not in held
    # The hash is keyed per cache: the same text gives another digest elsewhere.
    assert SpanCache()._digest(text, EMAIL, 0.5) != cache._digest(text, EMAIL, 0.5)


def test_the_cache_is_bounded_by_entries_and_by_spans_least_recently_used_out() -> None:
    cache = SpanCache(max_entries=3, max_spans=100)
    one = [Span(0, 1, "PERSON", 0.9)]
    for i in range(5):
        cache.put(f"text {i}", EMAIL, 0.5, one)
        cache.get("text 0", EMAIL, 0.5)  # keeps "text 0" recently used
    assert len(cache) == 3
    assert cache.get("text 0", EMAIL, 0.5) == one
    assert cache.get("text 1", EMAIL, 0.5) is None

    by_spans = SpanCache(max_entries=100, max_spans=10)
    for i in range(5):
        by_spans.put(f"text {i}", EMAIL, 0.5, one * 4)
    assert len(by_spans) == 2  # 8 spans held, a third entry would make 12


def test_a_resent_message_is_answered_from_the_cache_with_the_same_spans(detector: PiiDetector) -> None:
    text = "My name is Priya Raman: priya.raman@example.org or +1 415 555 0199."
    entities = {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER"}
    detector.cache.clear()
    first = detector.analyze(text, entities, 0.5)
    hits = detector.cache.hits
    assert detector.analyze(text, entities, 0.5) == first
    assert detector.cache.hits == hits + 1
    assert {s.label for s in first} == entities


def _history(turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for i in range(turns):
        messages.append({"role": "user", "content": f"Turn {i}: write to person{i}@example.com please."})
        messages.append({"role": "assistant", "content": "Done."})
    return messages


async def test_placeholders_stay_the_same_across_turns_when_the_history_comes_from_the_cache(
    make_guard: Any,
) -> None:
    guard, _ = make_guard()
    seen: list[list[str]] = []
    for turns in (1, 2, 3):
        async with guard.call(route="test") as call:
            verdict = await call.check_request({"model": "m", "messages": _history(turns)})
        seen.append([m["content"] for m in verdict.body["messages"] if m["role"] == "user"])
    assert seen[1][:1] == seen[0] and seen[2][:2] == seen[1]
    assert seen[2] == [f"Turn {i}: write to <EMAIL_ADDRESS_{i + 1}> please." for i in range(3)]


async def test_concurrent_requests_sharing_cached_texts_never_restore_each_others_values(
    make_guard: Any,
) -> None:
    guard, _ = make_guard()
    shared = "Please check the following."  # cached once, read by every request

    async def one(i: int) -> tuple[str, str]:
        body = {"model": "m", "messages": [
            {"role": "user", "content": shared},
            {"role": "user", "content": f"My address is client{i}@example.net."},
        ]}
        async with guard.call(route="test") as call:
            verdict = await call.check_request(body)
            redacted = verdict.body["messages"][1]["content"]
            return redacted, call.restore(f"I will write to {redacted.split()[-1].rstrip('.')}")

    results = await asyncio.gather(*(one(i) for i in range(40)))
    for i, (redacted, restored) in enumerate(results):
        assert redacted == "My address is <EMAIL_ADDRESS_1>."
        assert restored == f"I will write to client{i}@example.net"


def test_a_cache_of_size_zero_stores_nothing() -> None:
    cache = SpanCache(max_entries=0)
    cache.put("x", EMAIL, 0.5, [])
    assert len(cache) == 0 and cache.get("x", EMAIL, 0.5) is None


def test_cheap_analysis_stays_on_the_event_loop_and_ner_goes_to_a_thread(
        detector: PiiDetector, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    analyse = detector.analyze_batch

    def spy(*args: Any, **kwargs: Any) -> list[list[Span]]:
        threads.append(threading.get_ident())
        return analyse(*args, **kwargs)

    monkeypatch.setattr(detector, "analyze_batch", spy)
    here = threading.get_ident()
    unique = f"Talked to Orla Quennell {uuid.uuid4().hex[:6]} about it."

    async def run() -> list[list[list[Span]]]:
        return [
            await detector.analyze_many(["card 4111 1111 1111 1111 ok"], ["CREDIT_CARD"]),
            await detector.analyze_many([unique], ["PERSON"]),   # NER, not cached: a thread
            await detector.analyze_many([unique], ["PERSON"]),   # cached now: inline
        ]

    card, first, again = asyncio.run(run())
    assert [s.label for s in card[0]] == ["CREDIT_CARD"]
    assert first == again and [s.label for s in first[0]] == ["PERSON"]
    assert threads[0] == here and threads[1] != here and threads[2] == here
