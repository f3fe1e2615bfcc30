"""A bounded, thread-safe LRU keyed by a keyed hash: results about texts, never the texts.

A chat client resends the whole history every turn, so the same texts come back again and
again; results computed from a text alone (its PII spans, its prompt-injection score) can be
remembered. Keys are keyed BLAKE2 digests (a random key per cache, so a digest cannot be
tested against guesses offline); values are whatever the caller stores, which must not be
text. Bounded by entries and by a total weight (``weight(value)``, e.g. spans held).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class KeyedLru(Generic[V]):
    """``key(*parts)`` → digest; ``get``/``put`` by digest; least recently used out first.

    >>> cache: KeyedLru[float] = KeyedLru(max_entries=2)
    >>> k = cache.key("some text")
    >>> cache.put(k, 0.25); cache.get(k)
    0.25
    """

    def __init__(self, max_entries: int, max_weight: int | None = None,
                 weight: Callable[[V], int] = lambda _: 1) -> None:
        self.max_entries = max_entries
        self.max_weight = max_weight if max_weight is not None else max_entries
        self._weight = weight
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, V] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, *parts: str) -> bytes:
        """The keyed digest of ``parts`` (joined unambiguously)."""
        h = hashlib.blake2b(key=self._key, digest_size=20)
        for part in parts:
            data = part.encode("utf-8", "surrogatepass")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
        return h.digest()

    def get(self, key: bytes) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def contains(self, key: bytes) -> bool:
        """Whether ``key`` is held (neither a hit nor a miss; the order is unchanged)."""
        with self._lock:
            return key in self._entries

    def put(self, key: bytes, value: V) -> None:
        weight = self._weight(value)
        if self.max_entries <= 0 or weight > self.max_weight:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._held -= self._weight(old)
            self._entries[key] = value
            self._held += weight
            while len(self._entries) > self.max_entries or self._held > self.max_weight:
                _, evicted = self._entries.popitem(last=False)
                self._held -= self._weight(evicted)

    def clear(self) -> None:
        """Forget every entry (the hit and miss counts stay)."""
        with self._lock:
            self._entries.clear()
            self._held = 0
