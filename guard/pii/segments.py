"""Long texts are analysed in segments.

spaCy refuses texts over ``nlp.max_length`` (1,000,000 characters) and, below that, NER plus
Presidio's per-result bookkeeping grow faster than the text: one 1 MB prompt took 64 s and
4.4 GB. Cutting a text into segments of at most :data:`MAX_SEGMENT` characters keeps time
linear and memory flat. Cuts fall where PII is least likely to straddle them: at a blank
line, else a line break, else the end of a sentence, else a space.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SEGMENT = 20_000
_BREAKS = ("\n\n", "\n", ". ", " ")


def split_segments(text: str, max_chars: int | None = None) -> list[tuple[int, str]]:
    """``(offset, segment)`` pairs that concatenate back to ``text``.

    Segments are at most ``max_chars`` (default :data:`MAX_SEGMENT`) characters long.

    >>> split_segments("one two. three", max_chars=9)
    [(0, 'one two. '), (9, 'three')]
    """
    max_chars = max_chars or MAX_SEGMENT
    if len(text) <= max_chars:
        return [(0, text)]
    segments = []
    start = 0
    while len(text) - start > max_chars:
        window_end = start + max_chars
        floor = start + max_chars // 2  # never cut in the first half of a window
        cut = window_end
        for mark in _BREAKS:
            at = text.rfind(mark, floor, window_end)
            if at != -1:
                cut = at + len(mark)
                break
        segments.append((start, text[start:cut]))
        start = cut
    segments.append((start, text[start:]))
    return segments


OVERLAP = 256
"""Characters of context each piece reads beyond its own region (longer than any value)."""


@dataclass(frozen=True, slots=True)
class Piece:
    """A segment with context on both sides: ``text`` starts at ``offset`` in the whole text,
    and spans starting in ``[keep_from, keep_to)`` (piece coordinates) belong to it."""

    offset: int
    text: str
    keep_from: int
    keep_to: int

    def owns(self, start: int) -> bool:
        return self.keep_from <= start < self.keep_to


def split_pieces(text: str, max_chars: int | None = None, overlap: int = OVERLAP) -> list[Piece]:
    """The segments of :func:`split_segments`, each widened by ``overlap`` characters of context.

    A value cut by a segment border lies whole in the piece where it starts, so analysing
    each piece and keeping the spans it owns finds it once, whole.

    >>> [(p.offset, p.text, p.keep_from, p.keep_to) for p in split_pieces("aa bb cc", 3, 2)]
    [(0, 'aa bb', 0, 3), (1, 'a bb cc', 2, 5), (4, 'b cc', 2, 4)]
    """
    segments = split_segments(text, max_chars)
    if len(segments) == 1:
        return [Piece(0, text, 0, len(text))]
    pieces = []
    for offset, segment in segments:
        start = max(offset - overlap, 0)
        end = min(offset + len(segment) + overlap, len(text))
        pieces.append(Piece(start, text[start:end], offset - start, offset - start + len(segment)))
    return pieces
