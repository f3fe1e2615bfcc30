"""The PII detector: one Presidio analyzer per process and model, usable from async code.

``PiiDetector`` ties the stage together: normalise (:mod:`guard.pii.normalise`), cut long
texts into segments (:mod:`guard.pii.segments`), run the trimmed spaCy pipeline once per
batch (:mod:`guard.pii.nlp`), run only the recognizers the
request asks for (:mod:`guard.pii.recognizers`) with context words counted around each
value (:mod:`guard.pii.context`), trim NER hits to what can be a name
(:mod:`guard.pii.filters`), score bare country names low (:mod:`guard.pii.places`), mark
repeated names (:mod:`guard.pii.names`), map offsets back to the original text and keep one
span per region (:mod:`guard.pii.overlaps`).

Analysis is CPU-bound and synchronous. ``analyze_many`` runs it on a small thread pool of its
own, never on the event loop and never on the loop's default executor (which also resolves
host names for the upstream connection). There is no lock around the analyzer: requests share
one engine concurrently (a test checks that concurrent calls give the same spans as
sequential ones).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor

from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from guard.errors import ConfigError
from guard.pii.context import WindowContextEnhancer
from guard.pii.filters import refine_ner_span
from guard.pii.models import select_spacy_model
from guard.pii.names import propagate_names
from guard.pii.nlp import NER_ENTITIES, GuardNlpEngine
from guard.pii.normalise import normalise_text
from guard.pii.overlaps import resolve_overlaps
from guard.pii.places import COUNTRY_SCORE, is_country
from guard.pii.recognizers import SUPPORTED_ENTITIES, build_recognizers
from guard.pii.respell import respell
from guard.pii.segments import split_segments
from guard.values import Span

_NER = SpacyRecognizer.__name__  # the name Presidio records on NER results

_WARM_UP_TEXT = (
    "Jane Doe (jane.doe@example.com, +1 212-555-0142) lives at 1600 Main Street, Springfield."
    " Card 4111 1111 1111 1111, SSN 536-22-7614, IBAN GB82 WEST 1234 5698 7654 32,"
    " host 192.168.0.1, https://example.org, on 2024-01-31."
)


class PiiDetector:
    """Finds PII spans in texts.

    >>> detector = PiiDetector()  # doctest: +SKIP
    >>> detector.analyze("Mail jane@example.com", {"EMAIL_ADDRESS"})  # doctest: +SKIP
    [Span(start=5, end=21, label='EMAIL_ADDRESS', score=1.0)]

    Prefer :func:`get_detector`, which builds one detector per process and model.
    """

    def __init__(self, model: str = "auto") -> None:
        self.model_name: str = select_spacy_model(model)
        nlp_engine = GuardNlpEngine(self.model_name)
        nlp_engine.load()
        self._nlp = nlp_engine
        self._engine = AnalyzerEngine(
            registry=RecognizerRegistry(recognizers=build_recognizers(), supported_languages=["en"]),
            nlp_engine=nlp_engine,
            supported_languages=["en"],
            # Context after a value counts too: "555 0142 (mobile)", "416 60 039 office".
            context_aware_enhancer=WindowContextEnhancer(prefix=5, suffix=3),
        )
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def warm_up(self) -> None:
        """Run every recognizer once so the first request pays no lazy loading."""
        self.analyze(_WARM_UP_TEXT, SUPPORTED_ENTITIES)

    def analyze(self, text: str, entities: Collection[str], min_score: float = 0.0) -> list[Span]:
        """Spans of ``entities`` in ``text`` scoring at least ``min_score``.

        Offsets are into ``text`` as given (not the normalised copy); the spans are sorted and
        never overlap. Synchronous and CPU-bound: from async code use :meth:`analyze_many`.
        """
        return self.analyze_batch([text], entities, min_score)[0]

    def analyze_batch(
        self, texts: Sequence[str], entities: Collection[str], min_score: float = 0.0
    ) -> list[list[Span]]:
        """:meth:`analyze` for several texts; NER runs over them as one batch (faster)."""
        wanted = _check_entities(entities)
        if not wanted:
            # Presidio reads "no entities" as "all entities"; nothing asked, nothing found.
            return [[] for _ in texts]
        normalised = [respell(normalise_text(text)) for text in texts]
        segments = [
            (i, offset, segment)
            for i, norm in enumerate(normalised)
            for offset, segment in split_segments(norm.text)
        ]
        artifacts = self._nlp.process_many(
            [segment for _, _, segment in segments],
            with_ner=not wanted.isdisjoint(NER_ENTITIES),
        )
        found: list[list[Span]] = [[] for _ in texts]
        for (i, offset, segment), nlp_artifacts in zip(segments, artifacts, strict=True):
            found[i] += [
                Span(offset + s.start, offset + s.end, s.label, s.score)
                for s in self._analyze_segment(segment, nlp_artifacts, wanted, min_score)
            ]
        out: list[list[Span]] = []
        for norm, spans in zip(normalised, found, strict=True):
            if "PERSON" in wanted:
                spans += propagate_names(norm.text, spans)
            out.append(
                resolve_overlaps(Span(*norm.to_original(s.start, s.end), s.label, s.score) for s in spans)
            )
        return out

    def _analyze_segment(
        self,
        text: str,
        nlp_artifacts: NlpArtifacts,
        wanted: frozenset[str],
        min_score: float,
    ) -> list[Span]:
        """Presidio's results for one (normalised) segment, NER hits refined, scores cut."""
        results: list[RecognizerResult] = self._engine.analyze(
            text=text, language="en", entities=sorted(wanted), nlp_artifacts=nlp_artifacts
        )
        spans = []
        for r in results:
            if r.score < min_score or r.entity_type not in wanted:
                continue
            edges: tuple[int, int] | None = (r.start, r.end)
            score = float(r.score)
            if r.recognition_metadata.get(RecognizerResult.RECOGNIZER_NAME_KEY) == _NER:
                edges = refine_ner_span(text, r.start, r.end, r.entity_type)
                # A country the model found on its own ("the capital of France") is no one's
                # data; after "I live in", the place recognizer reports it.
                if edges and r.entity_type == "LOCATION" and is_country(text[slice(*edges)]):
                    score = min(score, COUNTRY_SCORE)
            if edges is not None and score >= min_score:
                spans.append(Span(*edges, r.entity_type, round(score, 4)))
        return spans

    async def analyze_many(
        self, texts: Sequence[str], entities: Collection[str], min_score: float = 0.0
    ) -> list[list[Span]]:
        """:meth:`analyze_batch` off the event loop, on the detector's thread pool."""
        loop = asyncio.get_running_loop()
        call = functools.partial(self.analyze_batch, list(texts), frozenset(entities), min_score)
        return await loop.run_in_executor(self._pool(), call)

    def _pool(self) -> ThreadPoolExecutor:
        # Created lazily so that a detector used only synchronously starts no threads.
        if self._executor is None:
            with self._executor_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=min(4, os.cpu_count() or 1),
                        thread_name_prefix="guard-pii",
                    )
        return self._executor


def _check_entities(entities: Collection[str]) -> frozenset[str]:
    wanted = frozenset(entities)
    unknown = wanted - SUPPORTED_ENTITIES
    if unknown:
        raise ConfigError(
            f"unsupported PII entities: {', '.join(sorted(unknown))}; "
            f"supported: {', '.join(sorted(SUPPORTED_ENTITIES))}"
        )
    return wanted


_detectors: dict[str, PiiDetector] = {}
_detectors_lock = threading.Lock()


def get_detector(model: str = "auto") -> PiiDetector:
    """The process-wide, warmed-up detector for ``model`` (built on first use).

    ``"auto"`` and the name it resolves to share one detector. Construction is serialised
    by a lock (so two first requests never load spaCy twice); analysis is not.
    """
    name = select_spacy_model(model)
    detector = _detectors.get(name)
    if detector is None:
        with _detectors_lock:
            detector = _detectors.get(name)
            if detector is None:
                detector = PiiDetector(name)
                detector.warm_up()
                _detectors[name] = detector
    return detector
