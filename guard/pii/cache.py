"""Spans already found, per text: a chat client resends the whole history every turn.

Turn 50 of a conversation carries the 49 messages Guard has already analysed; finding their
spans again would make every turn cost more than the last. :class:`SpanCache` remembers the
spans of recent texts so only new messages are analysed.

It holds no text: entries are keyed by a keyed BLAKE2 hash of the text (with a random key
made per process, so a key cannot be tested against guesses offline), and values are spans
(offsets, labels and scores). Pseudonym maps are never cached — each request numbers its own
placeholders from the spans — so two requests never share a map. The cache is bounded by
entries and by spans held, least recently used first out, and safe to share across threads.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Collection

from guard.values import Span

DEFAULT_ENTRIES = 10_000
DEFAULT_SPANS = 200_000


class SpanCache:
    """A thread-safe LRU map from (text, entities, min_score) to the spans found.

    >>> cache = SpanCache()
    >>> cache.get("mail a@example.com", {"EMAIL_ADDRESS"}, 0.5) is None
    True
    >>> cache.put("mail a@example.com", {"EMAIL_ADDRESS"}, 0.5, [Span(5, 18, "EMAIL_ADDRESS", 1.0)])
    >>> cache.get("mail a@example.com", {"EMAIL_ADDRESS"}, 0.5)
    [Span(start=5, end=18, label='EMAIL_ADDRESS', score=1.0)]
    """

    def __init__(self, max_entries: int = DEFAULT_ENTRIES, max_spans: int = DEFAULT_SPANS) -> None:
        self.max_entries = max_entries
        self.max_spans = max_spans
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[Span, ...]] = OrderedDict()
        self._spans = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _digest(self, text: str, entities: Collection[str], min_score: float) -> bytes:
        h = hashlib.blake2b(key=self._key, digest_size=20)
        h.update(f"{min_score!r}\x00{','.join(sorted(entities))}\x00".encode())
        h.update(text.encode("utf-8", "surrogatepass"))
        return h.digest()

    def get(self, text: str, entities: Collection[str], min_score: float) -> list[Span] | None:
        """The spans stored for this text and request, or ``None``."""
        digest = self._digest(text, entities, min_score)
        with self._lock:
            spans = self._entries.get(digest)
            if spans is None:
                self.misses += 1
                return None
            self._entries.move_to_end(digest)
            self.hits += 1
            return list(spans)

    def clear(self) -> None:
        """Forget every entry (the hit and miss counts stay)."""
        with self._lock:
            self._entries.clear()
            self._spans = 0

    def put(self, text: str, entities: Collection[str], min_score: float, spans: list[Span]) -> None:
        """Remember ``spans``; evicts the least recently used entries over either bound."""
        if self.max_entries <= 0 or len(spans) > self.max_spans:
            return
        digest = self._digest(text, entities, min_score)
        with self._lock:
            old = self._entries.pop(digest, None)
            if old is not None:
                self._spans -= len(old)
            self._entries[digest] = tuple(spans)
            self._spans += len(spans)
            while len(self._entries) > self.max_entries or self._spans > self.max_spans:
                _, evicted = self._entries.popitem(last=False)
                self._spans -= len(evicted)
