"""Where NER is worth running: windows of tokens around words that could start a name.

The statistical model is most of detection's cost, and the small English model finds names
and places almost only where a word is capitalised: on the presidio-research synthetic set,
every PERSON/LOCATION entity it returned lay within four tokens of such a word. So NER runs
on windows of :data:`RADIUS` tokens either side of each *candidate* word — one with a
capital letter ("Smith", "ex-Zombie", "IBM"), unless it starts a sentence and is a common
function word ("The"; "Please" is still a candidate), the pronoun "I", or — when dates are
not wanted — a day of the week; and not at all on a text without one.
A text typed with no capital letter at all is read whole: its case says nothing, and the
model still finds some names in it. The model reads at
most four tokens either side of a word (four convolution layers of width one), so within a
window it sees what it would see in the whole text; windows that touch are merged.

Lower-case names in a text that has capitals elsewhere ("Hi, my name is jane doe") are
not candidates; the model rarely finds them either. The name and address recognizers,
which look at context words, are not limited to these windows.
"""

from __future__ import annotations

from collections.abc import Collection

from spacy.tokens import Doc

RADIUS = 4
_SENTENCE_ENDS = frozenset({".", "!", "?", ":", ";", "…"})
_WEEKDAYS = frozenset({"monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                       "sunday", "mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri",
                       "sat", "sun"})
"""Capitalised, but never a name or a place; NER reads them only for dates."""
_STRIP = "\"'()[]{}<>*_#-,\u201c\u201d\u2018\u2019\u2013\u2014"  # and curly quotes, dashes


def candidate_windows(
    text: str, doc: Doc, function_words: Collection[str], radius: int = RADIUS, *,
    dates: bool = True,
) -> list[tuple[int, int]]:
    """Character ranges ``(start, end)`` of ``text`` (tokenized as ``doc``) that NER should
    read, in order, disjoint. ``dates=False``: days of the week are not candidates."""
    if text.islower() or not any(c.isupper() for c in text):
        # Typed without capitals: case says nothing, and the model still finds names.
        return [(0, len(text))] if text.strip() else []
    ranges: list[tuple[int, int]] = []
    last = len(doc) - 1
    sentence_start = True
    for token in doc:
        if token.is_space:
            if "\n" in token.text:
                sentence_start = True
            continue
        word = token.text.strip(_STRIP)
        if (_has_capital(word) and word != "I"
                and not (sentence_start and word.lower() in function_words)
                and (dates or word.lower() not in _WEEKDAYS)):
            first, final = max(token.i - radius, 0), min(token.i + radius, last)
            start, end = doc[first].idx, doc[final].idx + len(doc[final].text)
            if ranges and start <= ranges[-1][1] + 1:
                ranges[-1] = (ranges[-1][0], max(end, ranges[-1][1]))
            else:
                ranges.append((start, end))
        sentence_start = token.text in _SENTENCE_ENDS or token.text.endswith(("\n",))
    return ranges


def _has_capital(word: str) -> bool:
    return not word.islower() and any(c.isupper() for c in word)
