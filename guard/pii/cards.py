"""Payment card numbers: every scheme's length, checked by the Luhn digit.

Presidio's ``CreditCardRecognizer`` accepts 13 to 17 digits starting with 1, 3, 4, 5 or 6,
so it misses Mastercard's 2-series (2221-2720), 19-digit Visa and Discover numbers, JCB's
15-digit 2131/1800 numbers and 12-digit Maestro numbers. Here a number is a card number if
its issuer prefix and length match a scheme and its Luhn check digit is right.

Twelve- and thirteen-digit numbers pass both checks by chance more often (order numbers,
account numbers), so they score 0.4 and need a context word ("card", "visa", ...) to
reach the default threshold; longer numbers score 0.9.
"""

from __future__ import annotations

import re

_CANDIDATE = re.compile(r"(?<![\w.\-])\d(?:[ \-]?\d){11,18}(?![\w\-]|[.,]\d)")

# (prefixes, allowed lengths) per scheme, from the schemes' published IIN ranges.
_SCHEMES: tuple[tuple[tuple[str, ...], frozenset[int]], ...] = (
    (("4",), frozenset({13, 16, 19})),  # Visa
    (tuple(str(p) for p in range(51, 56)), frozenset({16})),  # Mastercard
    (tuple(str(p) for p in range(2221, 2721)), frozenset({16})),  # Mastercard 2-series
    (("34", "37"), frozenset({15})),  # American Express
    (("300", "301", "302", "303", "304", "305", "36", "38", "39"), frozenset({14, 15, 16})),
    (("6011", "644", "645", "646", "647", "648", "649", "65"), frozenset(range(16, 20))),
    (("62",), frozenset(range(16, 20))),  # UnionPay
    (("35",), frozenset(range(16, 20))),  # JCB
    (("2131", "1800"), frozenset({15})),  # JCB (old)
    (("50", *(str(p) for p in range(56, 70))), frozenset(range(12, 20))),  # Maestro
)

STRONG = 0.9
SHORT = 0.4

CARD_CONTEXT = [
    "credit",
    "card",
    "visa",
    "mastercard",
    "amex",
    "discover",
    "jcb",
    "diners",
    "maestro",
    "unionpay",
    "debit",
    "cc",
]
"""Words near a number that make it a card number (Presidio's context enhancer)."""


def luhn_valid(digits: str) -> bool:
    """Whether the last digit of ``digits`` is its Luhn check digit.

    >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
    (True, False)
    """
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_score(digits: str) -> float | None:
    """Score of ``digits`` (digits only) as a card number, or ``None``."""
    if not any(digits.startswith(prefixes) and len(digits) in lengths for prefixes, lengths in _SCHEMES):
        return None
    if not luhn_valid(digits):
        return None
    return STRONG if len(digits) >= 14 else SHORT


def find_cards(text: str) -> list[tuple[int, int, float]]:
    """``(start, end, score)`` of card numbers in ``text``.

    >>> find_cards("card 4111 1111 1111 1111, order 12345678")
    [(5, 24, 0.9)]
    """
    found = []
    for m in _CANDIDATE.finditer(text):
        value = m.group()
        separators = {c for c in value if not c.isdigit()}
        if len(separators) > 1:  # "4111-1111 1111-1111" is two numbers or none
            continue
        score = card_score(re.sub(r"\D", "", value))
        if score is not None:
            found.append((m.start(), m.end(), score))
    return found
