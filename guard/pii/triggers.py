"""Cheap reasons to look closer: most texts hold no digits, no "@", nothing a pattern needs.

Every pattern recognizer needs some character its values cannot do without: an e-mail
address has an "@" (or a spelled-out "[at]"), a phone, card, SSN or IBAN number has digits.
When every entity a request asks for has such a *trigger* and none occurs in a text, the
text cannot contain any of them and is not analysed at all — no tokenizer, no recognizer.
This is what makes the ``fast`` profile fast on ordinary prose.

Triggers are matched on the raw text and are Unicode-aware (``\\d`` includes full-width and
other digits that normalisation folds); zero-width characters between digits are allowed.
An entity without a trigger here (names, places, URLs, crypto wallets) is always analysed.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from guard.pii.segments import Piece

_GAP = r"[\W_]{0,3}"  # separators and invisible characters between digits
_DIGITS = re.compile(rf"\d(?:{_GAP}\d){{3}}")  # four digits, loosely written

TRIGGERS: dict[str, re.Pattern[str]] = {
    "EMAIL_ADDRESS": re.compile(r"[@\uff20\ufe6b]|[\[({<]\s*at\s*[\])}>]", re.IGNORECASE),
    "PHONE_NUMBER": _DIGITS,
    "CREDIT_CARD": _DIGITS,
    "US_SSN": _DIGITS,
    "US_ITIN": _DIGITS,
    "US_BANK_NUMBER": _DIGITS,
    "US_PASSPORT": _DIGITS,
    "US_DRIVER_LICENSE": _DIGITS,
    "UK_NHS": _DIGITS,
    "MEDICAL_LICENSE": _DIGITS,
    "IBAN_CODE": _DIGITS,
    "IP_ADDRESS": re.compile(r"\d{1,3}\W{1,3}\d{1,3}\W|[0-9a-f]{0,4}:[0-9a-f]{0,4}:", re.IGNORECASE),
    "MAC_ADDRESS": re.compile(r"[0-9a-f]{2}[:.\-][0-9a-f]{2}", re.IGNORECASE),
    "UUID": re.compile(r"[0-9a-f]{8}-", re.IGNORECASE),
}


def all_triggered(entities: Collection[str]) -> bool:
    """Whether every entity in ``entities`` has a trigger (so :func:`may_contain` can skip)."""
    return all(e in TRIGGERS for e in entities)


def may_contain(text: str, entities: Collection[str]) -> bool:
    """False only when ``text`` cannot hold any of ``entities``."""
    if not all_triggered(entities):
        return True
    patterns = {id(TRIGGERS[e]): TRIGGERS[e] for e in entities}  # each distinct pattern once
    return any(p.search(text) for p in patterns.values())


MARGIN = 128
"""Characters read on each side of a trigger: more than any value reaches beyond its trigger
(an e-mail's local part, a formatted card or IBAN number) plus a few context words."""


def trigger_pieces(text: str, entities: Collection[str], margin: int = MARGIN) -> list[Piece]:
    """Disjoint pieces of ``text`` around every trigger of ``entities``; the rest of the text
    cannot hold them. Each piece owns all of itself. Needs :func:`all_triggered`."""
    patterns = {id(TRIGGERS[e]): TRIGGERS[e] for e in entities}
    hits = sorted(m.span() for p in patterns.values() for m in p.finditer(text))
    ranges: list[tuple[int, int]] = []
    for start, end in hits:
        start, end = _word_edge(text, start - margin, -1), _word_edge(text, end + margin, 1)
        if ranges and start <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(end, ranges[-1][1]))
        else:
            ranges.append((start, end))
    return [Piece(start, text[start:end], 0, end - start) for start, end in ranges]


def _word_edge(text: str, at: int, step: int) -> int:
    """``at`` moved outwards (``step`` -1: left, 1: right) to a space, at most 32 characters."""
    at = min(max(at, 0), len(text))
    for _ in range(32):
        if at <= 0 or at >= len(text) or text[at].isspace():
            break
        at += step
    return min(max(at, 0), len(text))
