"""Spans already found, per text: a chat client resends the whole history every turn.

Turn 50 of a conversation carries the 49 messages Guard has already analysed; finding their
spans again would make every turn cost more than the last. :class:`SpanCache` remembers the
spans of recent texts so only new messages are analysed.

It holds no text: entries are keyed by a keyed hash of the text (:mod:`guard.keyed_cache`),
and values are spans (offsets, labels and scores). Pseudonym maps are never cached — each
request numbers its own placeholders from the spans — so two requests never share a map.
Bounded by entries and by spans held; safe to share across threads.
"""

from __future__ import annotations

from collections.abc import Collection

from guard.keyed_cache import KeyedLru
from guard.values import Span

DEFAULT_ENTRIES = 10_000
DEFAULT_SPANS = 200_000


class SpanCache:
    """Spans per (text, entities, min_score), least recently used out first.

    >>> cache = SpanCache()
    >>> cache.get("mail a@example.com", {"EMAIL_ADDRESS"}, 0.5) is None
    True
    >>> cache.put("mail a@example.com", {"EMAIL_ADDRESS"}, 0.5, [Span(5, 18, "EMAIL_ADDRESS", 1.0)])
    >>> cache.get("mail a@example.com", {"EMAIL_ADDRESS"}, 0.5)
    [Span(start=5, end=18, label='EMAIL_ADDRESS', score=1.0)]
    """

    def __init__(self, max_entries: int = DEFAULT_ENTRIES, max_spans: int = DEFAULT_SPANS) -> None:
        self._lru: KeyedLru[tuple[Span, ...]] = KeyedLru(max_entries, max_spans, weight=len)

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def hits(self) -> int:
        return self._lru.hits

    def _digest(self, text: str, entities: Collection[str], min_score: float) -> bytes:
        return self._lru.key(repr(min_score), ",".join(sorted(entities)), text)

    def get(self, text: str, entities: Collection[str], min_score: float) -> list[Span] | None:
        """The spans stored for this text and request, or ``None``."""
        spans = self._lru.get(self._digest(text, entities, min_score))
        return None if spans is None else list(spans)

    def contains(self, text: str, entities: Collection[str], min_score: float) -> bool:
        """Whether spans are stored for this text and request (without counting a hit)."""
        return self._lru.contains(self._digest(text, entities, min_score))

    def put(self, text: str, entities: Collection[str], min_score: float, spans: list[Span]) -> None:
        """Remember ``spans``."""
        self._lru.put(self._digest(text, entities, min_score), tuple(spans))

    def clear(self) -> None:
        self._lru.clear()
