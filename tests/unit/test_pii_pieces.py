"""Where NER reads, and long texts cut into pieces: nothing lost at a cut, across processes too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import spacy

import guard.pii.detector as detector_module
from guard.pii import PiiDetector, get_detector
from guard.pii.candidates import candidate_windows
from guard.pii.pool import balance
from guard.pii.segments import split_pieces

CORE = {"PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN",
        "IP_ADDRESS", "IBAN_CODE"}
FUNCTION_WORDS = {"the", "and", "i", "we", "it", "this"}


def windows(text: str) -> list[str]:
    doc = spacy.blank("en")(text)
    return [text[a:b] for a, b in candidate_windows(text, doc, FUNCTION_WORDS, radius=1)]


def test_ner_reads_windows_around_capitalised_words_only() -> None:
    text = "the weather is fine today and we met Maria near the old station yesterday evening"
    assert windows(text.replace("Maria", "maria")) == [text.replace("Maria", "maria")]
    assert windows(text) == ["met Maria near"]


def test_a_sentence_starting_function_word_is_not_a_candidate_but_other_capitals_are() -> None:
    assert windows("The cat sat on a mat all day long.") == []
    assert windows("Please send it. The end came for Ahmed at last") == ["Please send", "for Ahmed at"]
    assert [w for w in windows("an ex-Zombie song") if "Zombie song" in w]


def test_the_pronoun_i_and_weekdays_are_not_candidates_unless_dates_are_wanted() -> None:
    text = "so then I said we could meet on Friday at noon"
    assert windows(text) == ["on Friday at"]
    doc = spacy.blank("en")(text)
    assert candidate_windows(text, doc, FUNCTION_WORDS, radius=1, dates=False) == []
    assert windows("later I met Ahmed") == ["met Ahmed"]


def test_a_text_without_any_capital_is_read_whole() -> None:
    assert windows("call me jane doe") == ["call me jane doe"]
    assert windows("   ") == []


def test_pieces_overlap_and_each_position_is_owned_exactly_once() -> None:
    text = " ".join(f"word{i}" for i in range(400))
    pieces = split_pieces(text, 500, overlap=64)
    assert len(pieces) > 4
    owners = [0] * len(text)
    for piece in pieces:
        assert text[piece.offset : piece.offset + len(piece.text)] == piece.text
        for at in range(len(piece.text)):
            if piece.owns(at):
                owners[piece.offset + at] += 1
    assert set(owners) == {1}


def test_balance_shares_sizes_evenly_and_keeps_order_inside_each_group() -> None:
    groups = balance([10, 1, 9, 2, 5, 5], 2)
    assert sorted(i for g in groups for i in g) == list(range(6))
    assert all(g == sorted(g) for g in groups)
    assert [sum([10, 1, 9, 2, 5, 5][i] for i in g) for g in groups] == [16, 16]


def _long_text() -> str:
    lines = []
    for i in range(60):
        lines.append(f"Entry {i}: Jane Doe can be reached at jane.doe{i}@example.com or on "
                     f"+1 212 555 01{i % 100:02d}, her card is 4111 1111 1111 1111; ")
    return "".join(lines)


def test_a_value_cut_by_a_piece_border_is_found_whole_once(
    detector: PiiDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _long_text()
    detector.cache.clear()
    whole = detector.analyze(text, CORE, 0.5)
    # Cut every 300 characters, so many cuts fall inside an e-mail, phone or card number.
    monkeypatch.setattr(detector_module, "MAX_SEGMENT", 300)
    cuts = [p.offset + p.keep_to for p in split_pieces(text, 300)][:-1]
    values = [(s.start, s.end) for s in whole if s.label != "PERSON"]
    assert any(a < cut < b for cut in cuts for a, b in values), "no value straddles a cut"
    detector.cache.clear()
    assert detector.analyze(text, CORE, 0.5) == whole
    assert sum(1 for s in whole if s.label == "EMAIL_ADDRESS") == 60


@pytest.fixture(scope="module")
def pooled() -> Iterator[PiiDetector]:
    detector = get_detector()
    detector.use_processes(1)  # forkserver: a worker that loads its own model
    yield detector
    detector.use_processes(0)


def test_worker_processes_find_the_same_spans_as_one_process(pooled: PiiDetector) -> None:
    long_text = _long_text() * 4  # ~40k characters: shared between this thread and the worker
    short = [f"Olu Adeyemi ({n}@example.org) lives in Lagos." for n in ("olu", "ade", "x")]
    texts = [long_text, *short]
    pooled.cache.clear()
    with_workers = pooled.analyze_batch(texts, CORE, 0.5)
    pooled.use_processes(0)
    pooled.cache.clear()
    alone = pooled.analyze_batch(texts, CORE, 0.5)
    pooled.use_processes(1)
    assert with_workers == alone
    assert sum(1 for s in with_workers[0] if s.label == "EMAIL_ADDRESS") == 240
