"""Text normalisation before PII detection, with an exact map back to the original.

Obfuscated PII defeats pattern recognizers: ``john\\u200b@example.com`` is no email address
to a regex, and ``07700 900123`` typed in full-width digits is no phone number. Detection
therefore runs on a normalised copy (Unicode NFKC, invisible characters removed) while the
caller rewrites the *original* text, so every offset found in the copy must map back to the
original exactly. NFKC may change length ("ﬁ" → "fi", "㎞" → "km"), so the text is
normalised one grapheme-ish cluster (a starter and its combining marks) at a time and every
output character remembers the cluster it came from.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

# Characters that render as nothing (or only steer layout) and are used to split values
# so that patterns miss them. Unicode's "Cf" (format) category covers most of them:
# zero-width space/joiners and marks (U+200B..U+200F), bidi embeddings and isolates
# (U+202A..U+202E, U+2066..U+2069), word joiner and invisible operators (U+2060..U+2064),
# BOM (U+FEFF), soft hyphen (U+00AD), tag characters (U+E0000..U+E007F), ...
# The others below are letters or marks by category but equally invisible in practice.
_INVISIBLE_EXTRA = frozenset(
    {
        0x034F,  # combining grapheme joiner
        0x115F,  # hangul choseong filler
        0x1160,  # hangul jungseong filler
        0x3164,  # hangul filler
        0xFFA0,  # halfwidth hangul filler
        0x180B,  # mongolian free variation selectors
        0x180C,
        0x180D,
        0x180F,
        *range(0xFE00, 0xFE10),  # variation selectors
        *range(0xE0100, 0xE01F0),  # variation selectors supplement
    }
)


def is_invisible(char: str) -> bool:
    """Whether ``char`` is dropped by :func:`normalise` (renders as nothing)."""
    return unicodedata.category(char) == "Cf" or ord(char) in _INVISIBLE_EXTRA


@functools.lru_cache(maxsize=65_536)
def _kept_as_is(char: str) -> bool:
    """Whether ``char`` passes normalisation unchanged whatever surrounds it: visible, not a
    combining mark (nothing composes with it) and its own NFKC form."""
    return (not is_invisible(char) and not unicodedata.combining(char)
            and unicodedata.normalize("NFKC", char) == char)


@dataclass(frozen=True, slots=True)
class NormalisedText:
    """A normalised text and, per normalised character, the original span it came from.

    ``starts[i]``/``ends[i]`` are the original offsets of the cluster that produced
    normalised character ``i``; ``starts`` has one more entry, ``len(original)``.
    """

    text: str
    starts: list[int]
    ends: list[int]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map the normalised slice ``[start, end)`` (non-empty) to original offsets.

        The result covers every original character that contributed to the slice, including
        invisible characters *inside* it, but not invisible characters just outside it.
        """
        return self.starts[start], self.ends[end - 1]


def normalise_text(text: str) -> NormalisedText:
    """Normalise ``text`` (see the module docstring) and keep the offset maps."""
    if text.isascii() or all(_kept_as_is(c) for c in set(text) if not c.isascii()):
        # ASCII is NFKC already and has no format characters, and so is most other text
        # ("café", curly quotes, dashes): the common cases cost one pass over distinct characters.
        identity = list(range(len(text) + 1))
        return NormalisedText(text, identity, identity[1:])

    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        if is_invisible(text[i]):
            i += 1
            continue
        # A cluster: one character and the combining marks that follow it (skipping
        # invisible characters placed between them), so NFKC can compose "e" + U+0301.
        j = i + 1
        kept = [text[i]]
        while j < n and (unicodedata.combining(text[j]) or is_invisible(text[j])):
            if not is_invisible(text[j]):
                kept.append(text[j])
            j += 1
        # Trailing invisible characters belong to what follows, not to this cluster.
        end = j
        while end > i + 1 and is_invisible(text[end - 1]):
            end -= 1
        piece = unicodedata.normalize("NFKC", "".join(kept))
        # NFKC can itself produce format characters in rare compatibility mappings.
        piece = "".join(c for c in piece if not is_invisible(c))
        out.append(piece)
        starts.extend([i] * len(piece))
        ends.extend([end] * len(piece))
        i = j
    starts.append(n)
    return NormalisedText("".join(out), starts, ends)


def normalise(text: str) -> tuple[str, list[int]]:
    """Return ``text`` normalised for detection and the map back to original offsets.

    The map has one entry per normalised character plus one past the end: ``index_map[i]``
    is the original index of the character that produced normalised character ``i``.

    >>> normalise("jo\\u200bhn ﬁle")
    ('john file', [0, 1, 3, 4, 5, 6, 6, 7, 8, 9])
    """
    result = normalise_text(text)
    return result.text, result.starts
