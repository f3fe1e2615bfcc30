"""Person names that spaCy's small model misses.

General signals, none of them a list of names:

- **Cues.** Some phrases introduce a name: "my name is Siiri", "call me Tomi", "Dear Ana,",
  "Mrs. Karataev", "Name: Leidy Muris", "last name? Arcuri", "my sister Anna",
  "speak to Warrane"; others follow one: "Bridget said", "Kenji and I",
  "Priya Raman <priya@...>". The capitalised words they mark are reported as ``PERSON``
  (after "my name is", "call me" and name fields, also in all-lowercase chat).
- **Repetition.** A name found once is a name everywhere in the same text: "directed by
  Maciej Borkowski and starring Borkowski" — the second "Borkowski" is no less personal.
- **Lists.** In "Efimiya, Mary, Ariana and Jodi", once two items are names (one, for a
  pair), the other name-like items are names too.

:func:`propagate_names` applies the last two to the spans found by everything else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from guard.pii.address import CAPITALISED_WORD, NOT_PLACE, UPPER
from guard.values import Span

CUE_SCORE = 0.75

_INITIAL = rf"{UPPER}\.?"
# Words that follow a cue but name no one: "Hi Team", "Dear Sir", "this is Dr. ..."
_ADDRESSEE = (
    r"(?:Team|All|Everyone|Everybody|There|Folks|Guys|Sir|Sirs|Madam|Customer|Customers"
    r"|Friend|Friends|World|Support|Colleagues|Both|Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Mme|Mlle"
    r"|Herr|Frau|Again|Anyway|Man|Bro|Sis|Mum|Mom|Dad|Doc|Sales|Admin|Manager|Director)"
)
_NAME_PART = rf"(?:(?!(?:{NOT_PLACE}|{_ADDRESSEE})\b){CAPITALISED_WORD}|{_INITIAL}(?=[ \t]+{UPPER}))"
_PARTICLE = r"(?:van|von|de|del|della|da|di|du|der|den|la|le|bin|ibn|al|el|ter|ten|dos|das)"
_NAME = rf"{_NAME_PART}(?:[ \t]+(?:{_NAME_PART}|{_PARTICLE}(?=[ \t]+{UPPER}))){{0,3}}"
_LOWER_NAME = rf"(?!{NOT_PLACE.replace('(?:', '(?i:', 1)}\b)[^\W\d_]{{2,}}(?:[ \t]+[^\W\d_]{{2,}})?"

# "last name: Arcuri", "surname is Jones", "What's your first name? Ana"
_NAME_FIELD = r"(?:first|last|full|family|given|middle|maiden|sur)[ \t]*name(?:[ \t]+is|[ \t]*[:?])?"
# "my sister Anna", "our landlord, Mr. Kowalczyk", "his boss Jane Doe"
_RELATION = (
    r"(?:my|our|his|her|their)[ \t]+(?:kid|child|son|daughter|wife|husband|partner|spouse"
    r"|mom|mum|mother|dad|father|brother|sister|sibling|friend|boss|colleague|co-?worker"
    r"|manager|neighbou?r|cousin|uncle|aunt|grandmother|grandfather|grandma|grandpa|granny"
    r"|nephew|niece|fianc[eé]e?|girlfriend|boyfriend|roommate|flatmate|landlord|landlady"
    r"|tenant|assistant|teacher|doctor|lawyer|accountant|client|customer),?"
)
_CUES = (
    r"(?<![\w'\u2019])"
    r"(?i:my[ \t]+name[ \t]+is|my[ \t]+name's|name[ \t]+is|i[ \t]+am[ \t]+called"
    r"|i'?m[ \t]+called|call[ \t]+me|known[ \t]+as|this[ \t]+is|named|called"
    r"|(?:under|in)[ \t]+the[ \t]+name(?:[ \t]+of)?"
    r"|(?:speak|talk|spoke|talked|chat|chatted|married|engaged)[ \t]+(?:to|with)"
    r"|ask[ \t]+for|attn:?|name:|contact:|patient:|client:|customer:"
    r"|son[ \t]+of|daughter[ \t]+of|wife[ \t]+of|husband[ \t]+of|child[ \t]+of"
    rf"|{_NAME_FIELD}|{_RELATION}"
    r")[ \t]+"
)
_STRONG_CUES = (
    r"(?<![\w'\u2019])"
    rf"(?i:my[ \t]+name[ \t]+is|my[ \t]+name's|call[ \t]+me|name:|{_NAME_FIELD})[ \t]+"
)
_GREETING = r"(?:^|(?<=[\n.!?]))[ \t]*(?i:dear|hi|hello|hey|thanks|thank[ \t]+you)[ \t,]+"
_TITLE = r"(?<![\w.])(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Sir|Madam|Mme|Mlle|Herr|Frau)\.?[ \t]+"

# Cues after the name: "Bridget said", "Kenji and I", "Priya Raman <priya@example.com>".
_AFTER = (
    r"[ \t]+(?:(?i:said|says|told|asked|wrote|replied|called|and[ \t]+I|and[ \t]+me)(?![\w'])"
    r"|<[^<>\s@]+@)"
)
_CUE_RE = re.compile(rf"(?:{_CUES}|{_GREETING}|{_TITLE})(?P<name>{_NAME})(?![\w'\u2019@])")
_AFTER_RE = re.compile(rf"(?<![\w'\u2019.])(?P<name>{_NAME})(?={_AFTER})")
_LOWER_CUE_RE = re.compile(rf"{_STRONG_CUES}(?P<name>{_LOWER_NAME})(?![\w'\u2019@])")


def find_cued_names(text: str) -> list[tuple[int, int, float]]:
    """``(start, end, score)`` of names introduced by a cue phrase.

    >>> find_cued_names("Hi, my name is Siiri and this is Dr. Ana de Souza.")
    [(15, 20, 0.75), (38, 50, 0.75)]
    """
    found = {m.span("name") for m in _CUE_RE.finditer(text)}
    found |= {m.span("name") for m in _AFTER_RE.finditer(text)}
    if not any(c.isupper() for c in text):
        found |= {m.span("name") for m in _LOWER_CUE_RE.finditer(text)}
    return [(start, end, CUE_SCORE) for start, end in sorted(found)]


_WORD_RE = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_NOT_NAME_RE = re.compile(rf"{NOT_PLACE}|{_PARTICLE}", re.IGNORECASE)


def propagate_names(text: str, spans: Iterable[Span]) -> list[Span]:
    """New ``PERSON`` spans implied by the names already found in ``text``.

    Repetition: a found name's full text and each of its words (three letters or more, not
    a common word) are searched as whole words. Lists: in "Efimiya, Mary, Ariana and Jodi",
    once two items are names, the other name-like items are names too. Occurrences that
    overlap any existing span are skipped; new spans carry the score of the names found.
    """
    spans = list(spans)
    taken = _Coverage(text, spans)
    added = _repeated_names(text, spans, taken)
    return added + _names_in_lists(text, spans + added, taken)


class _Coverage:
    """Which characters of a text some span covers (linear, however many spans)."""

    def __init__(self, text: str, spans: Iterable[Span]) -> None:
        self._covered = bytearray(len(text))
        for s in spans:
            self.add(s.start, s.end)

    def add(self, start: int, end: int) -> None:
        self._covered[start:end] = b"\x01" * (end - start)

    def is_free(self, start: int, end: int) -> bool:
        return self._covered.find(1, start, end) == -1


def _repeated_names(text: str, spans: list[Span], taken: _Coverage) -> list[Span]:
    names = sorted(
        {(text[s.start : s.end], s.score) for s in spans if s.label == "PERSON"},
        key=lambda item: (-len(item[0]), -item[1]),
    )
    needles: dict[str, float] = {}
    for value, score in names:
        needles.setdefault(value, score)
    for value, score in names:
        for word in _WORD_RE.findall(value):
            if len(word) >= 3 and not _NOT_NAME_RE.fullmatch(word):
                needles.setdefault(word, score)
    added: list[Span] = []
    for needle, score in needles.items():
        at = text.find(needle)
        while at != -1:
            end = at + len(needle)
            # "Maciej's" repeats "Maciej"; "O'Neil" does not repeat "Neil".
            whole_word = not (_is_word_char(text, at - 1) or _continues_word(text, end))
            if whole_word and taken.is_free(at, end):
                added.append(Span(at, end, "PERSON", score))
                taken.add(at, end)
            at = text.find(needle, at + 1)
    return added


def _is_word_char(text: str, i: int) -> bool:
    return 0 <= i < len(text) and (text[i].isalnum() or text[i] in "_'\u2019-")


def _continues_word(text: str, i: int) -> bool:
    """Whether ``text[i:]`` continues the word before ``i`` (a possessive "'s" does not)."""
    if i < len(text) and text[i] in "'\u2019" and text[i + 1 : i + 2] in ("s", "S"):
        return _is_word_char(text, i + 2) and text[i + 2] not in "'\u2019-"
    return _is_word_char(text, i)


_ITEM = r"[^\W\d_][\w'\u2019-]*(?:[ \t]+[^\W\d_][\w'\u2019-]*)?"
_LIST_RE = re.compile(
    rf"(?<![\w'\u2019-])(?:{_ITEM})(?:[ \t]*,[ \t]*(?:{_ITEM}))*"
    rf"(?:[ \t]*,)?[ \t]+(?:and|or|&)[ \t]+(?:{_ITEM})(?![\w'\u2019-])"
)
_ITEM_SPLIT_RE = re.compile(r"[ \t]*,[ \t]*(?:(?:and|or|&)[ \t]+)?|[ \t]+(?:and|or|&)[ \t]+")
_MIN_NAMED_ITEMS = 2


def _names_in_lists(text: str, spans: list[Span], taken: _Coverage) -> list[Span]:
    cased = any(c.isupper() for c in text)
    persons = {(s.start, s.end): s.score for s in spans if s.label == "PERSON"}
    added: list[Span] = []
    for m in _LIST_RE.finditer(text):
        items: list[tuple[int, int]] = []
        at = m.start()
        for sep in [*_ITEM_SPLIT_RE.finditer(text, m.start(), m.end()), None]:
            end = sep.start() if sep else m.end()
            items.append((at, end))
            at = sep.end() if sep else m.end()
        named = [persons[item] for item in items if item in persons]
        # "Olu and Ngozi Adeyemi": a pair needs one name; a longer list, two.
        if not named or len(named) < min(_MIN_NAMED_ITEMS, len(items) - 1):
            continue
        for start, end in items:
            if not taken.is_free(start, end):
                continue
            words = text[start:end].split()
            if any(_NOT_NAME_RE.fullmatch(w) or (cased and not w[0].isupper()) for w in words):
                continue
            added.append(Span(start, end, "PERSON", min(named)))
            taken.add(start, end)
    return added
