"""Phone numbers by shape, in the formats people actually type.

Presidio's ``PhoneRecognizer`` asks python-phonenumbers to validate each match against
eight regions, one full scan of the text per region. That misses most numbers written
the local way elsewhere ("0490 39 07 81", "(08) 8747 6301", "9472 7916") and is slow.
Here a number is recognised by its shape, and the shape decides how sure we are:

===============================================  =====
shape                                            score
===============================================  =====
international prefix: ``+44 7700 900123``         0.7
area code in parentheses: ``(08) 8747 6301``      0.6
North American: ``212-555-0142``, ``1-800-...``   0.6
other digit groups: ``0490 39 07 81``             0.4
ten or eleven digits in a row: ``5403926876``     0.3
===============================================  =====

Below the default threshold (0.5) a number needs a context word ("phone", "call",
"mobile", "fax", ... within a few words before or after it), which Presidio's context
enhancer adds (+0.35). Shapes that are something else are not phone numbers: dates
(``2024-01-31``), IPv4 addresses, US SSNs (``536-22-7614``), ZIP+4 codes and card numbers
(more than 15 digits).
"""

from __future__ import annotations

import re

_CANDIDATE = re.compile(
    r"(?<![\w+.\-/])"
    r"(?P<number>"
    r"(?P<intl>(?:\+|00)\d{1,3}[ .\-]?)?"
    r"(?P<paren>\(\d{1,5}\)[ .\-]?)?"
    r"\d{1,12}(?:[ .\-]\d{1,12}){0,5}"
    r")"
    r"(?P<ext>[ ]?(?:x|ext\.?|extension)[ ]?\d{1,5})?"
    # not followed by more of a number; "555 0142-Office" still ends at the 2
    r"(?![\w/]|-\d|[.,]\d)"
)
_NANP = re.compile(r"(?:(?:\+?1|001)[ .\-]?)?\d{3}[.\-]\d{3}[.\-]\d{4}")
_DATE = re.compile(r"\d{4}[.\-]\d{1,2}[.\-]\d{1,2}|\d{1,2}[.\-]\d{1,2}[.\-](?:\d{4}|\d{2})")
_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_SSN = re.compile(r"\d{3}-\d{2}-\d{4}")
_ZIP4 = re.compile(r"\d{5}-\d{4}")

# A number labelled as some other identifier is not a phone number: "order 55-10293",
# "MRN 00482913", "invoice no. 2024 118", "ticket #443 921".
_LABELLED_ID = re.compile(
    r"(?<![\w])(?i:order|invoice|inv|ref|reference|ticket|case|tracking|confirmation|booking"
    r"|reservation|account|acct|customer|member|policy|claim|serial|sku|item|mrn|id|pin|po"
    r"|receipt|transaction|txn)(?:[ \t]*(?:number|num|no\.?|nr\.?|id|#|:))?[ \t]*[:#]?[ \t]*$"
)

INTERNATIONAL = 0.7
AREA_CODE = 0.6
NORTH_AMERICAN = 0.6
GROUPED = 0.4
UNGROUPED = 0.3


def phone_score(number: str) -> float | None:
    """How phone-like ``number`` (without extension) is, or ``None`` if it is not one.

    >>> phone_score("+41 (0)71 526 99 04"), phone_score("2024-01-31")
    (0.7, None)
    """
    digits = sum(c.isdigit() for c in number)
    if not 7 <= digits <= 15:
        return None
    if any(p.fullmatch(number) for p in (_DATE, _IPV4, _SSN, _ZIP4)):
        return None
    if (number.startswith("+") and digits >= 8) or (number.startswith("00") and digits >= 11):
        return INTERNATIONAL
    if number.startswith("(") or "(" in number[:8]:
        return AREA_CODE
    if _NANP.fullmatch(number):
        return NORTH_AMERICAN
    if number.isdigit():
        return UNGROUPED if digits in (10, 11) else None
    groups = re.split(r"[ .\-]", number)
    if len(groups) >= 2 and all(len(g) >= 2 for g in groups[1:]):
        return GROUPED
    return None


def find_phone_numbers(text: str) -> list[tuple[int, int, float]]:
    """``(start, end, score)`` of phone-shaped numbers in ``text``.

    >>> find_phone_numbers("Call 0490 39 07 81 or +1-903-140-4508x769 on 2024-01-31.")
    [(5, 18, 0.4), (22, 41, 0.7)]
    """
    found = []
    for m in _CANDIDATE.finditer(text):
        # "(415) 555-0199" and "+1 212-555-0147" are written so only as phone numbers,
        # whatever label precedes them.
        if not m.group("number").startswith(("(", "+")) and _LABELLED_ID.search(
                text, max(0, m.start() - 30), m.start()):
            continue
        score = phone_score(m.group("number"))
        if score is not None:
            found.append((m.start(), m.end(), score))
    return found


PHONE_CONTEXT = [
    "phone",
    "telephone",
    "tel",
    "mobile",
    "cell",
    "call",
    "fax",
    "contact",
    "reach",
    "whatsapp",
    "text",
    "sms",
    "desk",
    "office",
    "landline",
    "dial",
    "ring",
    "hotline",
    "number",
    "answer",
    "message",
    "voicemail",
    "ext",
]
"""Words near a number that make it a phone number (Presidio's context enhancer)."""
