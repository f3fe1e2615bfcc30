"""One span per region: the rewriter can substitute spans in any order without losing text."""

from __future__ import annotations

import itertools
import random

from guard.pii import resolve_overlaps
from guard.values import Span


def test_email_wins_over_the_url_inside_it() -> None:
    email = Span(8, 28, "EMAIL_ADDRESS", 1.0)
    url = Span(13, 28, "URL", 0.5)
    assert resolve_overlaps([url, email]) == [email]


def test_higher_score_wins_over_a_longer_span() -> None:
    phone = Span(0, 14, "PHONE_NUMBER", 0.75)
    date = Span(4, 14, "DATE_TIME", 0.85)
    assert resolve_overlaps([phone, date]) == [date]


def test_on_equal_scores_the_longer_span_wins() -> None:
    short = Span(0, 4, "PERSON", 0.7)
    long = Span(0, 9, "LOCATION", 0.7)
    assert resolve_overlaps([short, long]) == [long]


def test_touching_spans_are_both_kept_and_sorted() -> None:
    a, b = Span(0, 4, "PERSON", 0.7), Span(4, 9, "PERSON", 0.9)
    assert resolve_overlaps([b, a]) == [a, b]


def test_a_span_overlapping_two_kept_spans_is_dropped() -> None:
    left, right = Span(0, 5, "PERSON", 0.9), Span(10, 15, "PERSON", 0.9)
    bridge = Span(3, 12, "LOCATION", 0.8)
    assert resolve_overlaps([bridge, left, right]) == [left, right]


def test_result_is_sorted_and_never_overlaps_for_random_input() -> None:
    rng = random.Random(7)
    for _ in range(200):
        spans = []
        for _ in range(rng.randint(0, 12)):
            start = rng.randint(0, 50)
            spans.append(Span(start, start + rng.randint(1, 12), "X", rng.choice([0.4, 0.7, 1.0])))
        kept = resolve_overlaps(spans)
        assert all(a.end <= b.start for a, b in itertools.pairwise(kept))
        assert set(kept) <= set(spans)
        # Every dropped span overlaps a kept span that scores at least as high.
        for s in set(spans) - set(kept):
            assert any(k.start < s.end and s.start < k.end and k.score >= s.score for k in kept)
