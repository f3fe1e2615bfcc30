"""One span per region of text.

Recognizers overlap: every email address contains a URL-looking host, a date hides inside
some phone numbers, NER tags a street name inside an address. Rewriting overlapping spans
one after another deletes text ("Mail to <EMAIL_ADDRESS_1>call me."), so the detector
returns a non-overlapping set and the rewriter can substitute spans in any order.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from guard.values import Span


def resolve_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Keep the best span of every overlapping group; return them sorted by offset.

    Best means the higher score, then the longer span, then the earlier one. A span is
    dropped if it overlaps any span kept before it, so the result never overlaps (touching
    spans, where one ends where the next starts, are not an overlap).

    >>> resolve_overlaps([Span(9, 25, "EMAIL_ADDRESS", 1.0), Span(14, 25, "URL", 0.5)])
    [Span(start=9, end=25, label='EMAIL_ADDRESS', score=1.0)]
    """
    ranked = sorted(spans, key=lambda s: (-s.score, s.start - s.end, s.start, s.label))
    starts: list[int] = []  # kept spans, sorted by start; they never overlap, so ends
    ends: list[int] = []  # are sorted the same way
    kept: list[Span] = []
    for span in ranked:
        i = bisect.bisect_right(starts, span.start)
        # Only the neighbours can overlap: the kept span starting at or before this one
        # and the one starting after it.
        if i > 0 and ends[i - 1] > span.start:
            continue
        if i < len(starts) and starts[i] < span.end:
            continue
        starts.insert(i, span.start)
        ends.insert(i, span.end)
        kept.insert(i, span)
    return kept
