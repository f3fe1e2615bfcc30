"""The JSON-lines span format: ``{"text": ...}`` in, one JSON list of spans out per line.

It is what ``python -m guard.pii`` and ``guard scan --format spans`` speak, and what
the shared ``pii_eval.py`` benchmark scores. Lines are read in batches so spaCy sees many texts at once
(several times faster than one at a time), and output order always follows input order.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from itertools import islice
from typing import Protocol, TextIO

from guard.values import Span

BATCH_LINES = 1024


class BatchDetector(Protocol):
    """What :func:`write_spans` needs of a detector (``PiiDetector`` has it)."""

    def analyze_batch(
        self, texts: Sequence[str], entities: Collection[str], min_score: float = 0.0
    ) -> list[list[Span]]: ...


def span_to_json(span: Span) -> dict[str, object]:
    """One span as the JSON object of the format."""
    return {"start": span.start, "end": span.end, "label": span.label, "score": span.score}


def _texts(lines: Iterable[str]) -> Iterator[str]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ValueError(f'line {number}: expected an object with a string "text"')
        yield record["text"]


def write_spans(
    lines: Iterable[str],
    out: TextIO,
    detector: BatchDetector,
    entities: Collection[str],
    min_score: float,
) -> int:
    """Detect PII in each JSON line of ``lines`` and write one JSON list per line to ``out``.

    Blank lines are skipped; a line that is not ``{"text": str}`` raises ``ValueError``
    naming its line number. Returns the number of records written.

    >>> import io
    >>> write_spans(['{"text": "mail a@example.com"}'], io.StringIO(), detector,
    ...             {"EMAIL_ADDRESS"}, 0.5)  # doctest: +SKIP
    1
    """
    texts = _texts(lines)
    written = 0
    while batch := list(islice(texts, BATCH_LINES)):
        for spans in detector.analyze_batch(batch, entities, min_score):
            out.write(json.dumps([span_to_json(s) for s in spans]) + "\n")
        out.flush()
        written += len(batch)
    return written
