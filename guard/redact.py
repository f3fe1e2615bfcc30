"""Pseudonyms for one request: value ↔ ``<LABEL_n>``, rewriting texts, and restoring them.

A :class:`PlaceholderMap` lives exactly as long as one call. It is never logged (its ``repr``
shows counts only), never shared between calls and never sent anywhere.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from guard.values import Span

PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*?)_(\d+)>")

_NUMERIC_LABELS = frozenset(
    {"PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "US_ITIN", "US_BANK_NUMBER", "UK_NHS"}
)


def canonical_value(label: str, value: str) -> str:
    """The form two mentions of one value share, so they get one placeholder.

    ``John@Example.com`` and ``john@example.com``, or ``4111 1111 1111 1111`` and
    ``4111-1111-1111-1111``, are the same value written twice.
    """
    text = "".join(ch for ch in unicodedata.normalize("NFKC", value)
                   if unicodedata.category(ch) != "Cf")
    if label in _NUMERIC_LABELS:
        digits = "".join(ch for ch in text if ch.isdigit())
        return digits or text
    if label in ("EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS", "URL"):
        return "".join(text.split()).casefold()
    return " ".join(text.split()).casefold()


class PlaceholderMap:
    """Pseudonyms of one request, numbered by first appearance per label."""

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._originals: dict[str, str] = {}
        self._counts: Counter[str] = Counter()

    def placeholder_for(self, label: str, value: str) -> str:
        key = (label, canonical_value(label, value))
        found = self._by_value.get(key)
        if found is None:
            self._counts[label] += 1
            found = f"<{label}_{self._counts[label]}>"
            self._by_value[key] = found
            self._originals[found] = value
        return found

    def originals(self) -> dict[str, str]:
        """Placeholder → original value: only for writing an encrypted batch maps file."""
        return dict(self._originals)

    @classmethod
    def from_originals(cls, originals: Mapping[str, str]) -> PlaceholderMap:
        """A map that restores ``originals`` (placeholder → value), e.g. from a batch maps file."""
        restored = cls()
        for placeholder, value in originals.items():
            match = PLACEHOLDER.fullmatch(placeholder)
            if match is None:
                raise ValueError("not a placeholder")
            label, number = match.group(1), int(match.group(2))
            restored._by_value[(label, canonical_value(label, value))] = placeholder
            restored._originals[placeholder] = value
            restored._counts[label] = max(restored._counts[label], number)
        return restored

    def restore(self, text: str) -> str:
        """``text`` with every placeholder of this request replaced by its original value."""
        if "<" not in text or not self._originals:
            return text
        return PLACEHOLDER.sub(lambda m: self._originals.get(m.group(0), m.group(0)), text)

    def __len__(self) -> int:
        return len(self._originals)

    def __bool__(self) -> bool:
        return bool(self._originals)

    def __repr__(self) -> str:  # never show values: this object must be safe to log by mistake
        return f"<PlaceholderMap {dict(self._counts)}>"


def rewrite(text: str, spans: Iterable[Span], replacement: Callable[[Span], str | None]) -> str:
    """Replace each span (sorted, non-overlapping) by ``replacement(span)``; ``None`` keeps it.

    Everything outside the spans is copied byte for byte.
    """
    out: list[str] = []
    cursor = 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start < cursor:
            raise ValueError("rewrite needs non-overlapping spans")
        new = replacement(span)
        if new is None:
            continue
        out.append(text[cursor:span.start])
        out.append(new)
        cursor = span.end
    out.append(text[cursor:])
    return "".join(out)


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, merged copies of overlapping or touching ranges."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def count_labels(spans: Iterable[Span]) -> dict[str, int]:
    return dict(Counter(s.label for s in spans))


def mask_for(label: str) -> str:
    """What ``action: mask`` writes: the type without a number, so it cannot be restored."""
    return f"[{label}]"


def describe_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{label} x{n}" for label, n in sorted(counts.items()))
