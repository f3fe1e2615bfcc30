"""PII detection: find personal data in text, with offsets into the text as given.

>>> from guard.pii import get_detector
>>> detector = get_detector()  # doctest: +SKIP
>>> detector.analyze("Mail jane@example.com", {"EMAIL_ADDRESS"}, min_score=0.5)  # doctest: +SKIP
[Span(start=5, end=21, label='EMAIL_ADDRESS', score=1.0)]

Modules, one job each:

- ``detector``: the stage (``PiiDetector``, ``get_detector``);
- ``normalise``: NFKC and invisible characters, with the map back to original offsets;
  ``segments``: long texts cut into segments;
- ``models``: which installed spaCy model; ``nlp``: spaCy trimmed to NER, batched;
- ``recognizers``: what runs per entity; Guard's own finders in ``address``, ``places``,
  ``names``, ``phone``, ``cards``, adapted to Presidio by ``base``;
- ``context``: context words around a value; ``filters``: NER hits trimmed to names;
- ``offline``: domain checks with no download; ``overlaps``: one span per region;
- ``spans``: the JSON-lines format of ``python -m guard.pii`` and ``guard scan``.
"""

from __future__ import annotations

from guard.pii.detector import PiiDetector, get_detector
from guard.pii.models import select_spacy_model
from guard.pii.normalise import normalise
from guard.pii.overlaps import resolve_overlaps
from guard.pii.recognizers import SUPPORTED_ENTITIES

__all__ = [
    "SUPPORTED_ENTITIES",
    "PiiDetector",
    "get_detector",
    "normalise",
    "resolve_overlaps",
    "select_spacy_model",
]
