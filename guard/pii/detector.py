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
own, never on the loop's default executor (which also resolves host names for the upstream
connection) — and on the event loop only when the work costs less than the hop to a thread:
texts already in the span cache, or a short text read for pattern entities only (a streamed
window checked for card numbers: tens of microseconds, where a busy loop's thread hop waits
for the GIL's switch interval, 5 ms, and queues behind every other stream's window).
There is no lock around the analyzer: requests share one engine concurrently (a test checks
that concurrent calls give the same spans as sequential ones).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor

from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from guard.errors import ConfigError
from guard.pii.cache import SpanCache
from guard.pii.context import WindowContextEnhancer
from guard.pii.filters import refine_ner_span
from guard.pii.models import select_spacy_model
from guard.pii.names import propagate_names
from guard.pii.nlp import NER_ENTITIES, GuardNlpEngine
from guard.pii.normalise import normalise_text
from guard.pii.overlaps import resolve_overlaps
from guard.pii.places import COUNTRY_SCORE, is_country
from guard.pii.pool import PiecePool
from guard.pii.recognizers import SUPPORTED_ENTITIES, build_recognizers
from guard.pii.respell import respell
from guard.pii.segments import MAX_SEGMENT, split_pieces
from guard.pii.triggers import all_triggered, trigger_pieces
from guard.values import Span

POOL_MIN_CHARS = 8_000
"""Batches smaller than this stay in the calling thread: shipping them costs more."""
INLINE_CHARS = 1_500
"""Pattern-only work reading up to this many characters around triggers runs on the event
loop: about 1 ms (a 1 KB chat answer with a phone number reads ~300; a window without a
digit or "@" reads none and costs ~40 µs)."""

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
        # Context after a value counts too: "555 0142 (mobile)", "416 60 039 office".
        self._enhancer = WindowContextEnhancer(prefix=5, suffix=3)
        self._engine = AnalyzerEngine(
            registry=RecognizerRegistry(recognizers=build_recognizers(), supported_languages=["en"]),
            nlp_engine=nlp_engine,
            supported_languages=["en"],
            context_aware_enhancer=self._enhancer,
        )
        self._recognizers: dict[frozenset[str], tuple[list[EntityRecognizer], list[str]]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._processes: PiecePool | None = None
        self.cache = SpanCache()
        self.warmed = False
        """True once :meth:`warm_up` has run (readiness reports it)."""

    def warm_up(self) -> None:
        """Run every recognizer once so the first request pays no lazy loading."""
        self.analyze(_WARM_UP_TEXT, SUPPORTED_ENTITIES)
        self.warmed = True

    def analyze(self, text: str, entities: Collection[str], min_score: float = 0.0) -> list[Span]:
        """Spans of ``entities`` in ``text`` scoring at least ``min_score``.

        Offsets are into ``text`` as given (not the normalised copy); the spans are sorted and
        never overlap. Synchronous and CPU-bound: from async code use :meth:`analyze_many`.
        """
        return self.analyze_batch([text], entities, min_score)[0]

    def analyze_batch(
        self, texts: Sequence[str], entities: Collection[str], min_score: float = 0.0
    ) -> list[list[Span]]:
        """:meth:`analyze` for several texts; NER runs over them as one batch (faster).

        Texts seen recently (same entities and threshold) are answered from the span cache;
        the rest are analysed together, across processes when :meth:`use_processes` is on.
        """
        wanted = _check_entities(entities)
        if not wanted:
            # Presidio reads "no entities" as "all entities"; nothing asked, nothing found.
            return [[] for _ in texts]
        found: list[list[Span] | None] = [self.cache.get(t, wanted, min_score) for t in texts]
        todo = [i for i, spans in enumerate(found) if spans is None]
        for i, spans in zip(todo, self._detect([texts[i] for i in todo], wanted, min_score), strict=True):
            self.cache.put(texts[i], wanted, min_score, spans)
            found[i] = spans
        return [spans or [] for spans in found]

    def _detect(self, texts: Sequence[str], wanted: frozenset[str], min_score: float) -> list[list[Span]]:
        if not texts:
            return []
        normalised = [respell(normalise_text(text)) for text in texts]
        if all_triggered(wanted):
            # Pattern entities only: read around their triggers (a digit, an "@", ...), and
            # not at all a text without one (guard.pii.triggers).
            pieces = [(i, piece) for i, norm in enumerate(normalised)
                      for piece in trigger_pieces(norm.text, wanted)]
        else:
            pieces = [
                (i, piece)
                for i, norm in enumerate(normalised)
                for piece in split_pieces(norm.text, self._piece_chars(len(norm.text)))
            ]
        piece_texts = [piece.text for _, piece in pieces]
        if self._processes is not None and sum(map(len, piece_texts)) >= POOL_MIN_CHARS:
            piece_spans = self._processes.run(self.analyze_pieces, piece_texts, wanted, min_score)
        else:
            piece_spans = self.analyze_pieces(piece_texts, wanted, min_score)
        found: list[list[Span]] = [[] for _ in texts]
        for (i, piece), spans in zip(pieces, piece_spans, strict=True):
            found[i] += [
                Span(piece.offset + s.start, piece.offset + s.end, s.label, s.score)
                for s in spans
                if piece.owns(s.start)
            ]
        out: list[list[Span]] = []
        for norm, spans in zip(normalised, found, strict=True):
            if "PERSON" in wanted:
                spans += propagate_names(norm.text, spans)
            out.append(
                resolve_overlaps(Span(*norm.to_original(s.start, s.end), s.label, s.score) for s in spans)
            )
        return out

    def _piece_chars(self, length: int) -> int:
        """Piece size: :data:`MAX_SEGMENT`, smaller when a pool can share a long text."""
        if self._processes is None or length < POOL_MIN_CHARS:
            return MAX_SEGMENT
        lanes = self._processes.processes + 1
        parts = lanes * -(-length // (MAX_SEGMENT * lanes))
        return max(-(-length // parts), POOL_MIN_CHARS // 2)

    def analyze_pieces(
        self, texts: Sequence[str], wanted: frozenset[str], min_score: float
    ) -> list[list[Span]]:
        """Spans of each (normalised) text, offsets into it: NER batched, then the recognizers.

        The unit of work of a :class:`~guard.pii.pool.PiecePool` worker."""
        artifacts = self._nlp.process_many(texts, with_ner=not wanted.isdisjoint(NER_ENTITIES),
                                           dates="DATE_TIME" in wanted)
        return [
            self._analyze_segment(text, nlp_artifacts, wanted, min_score)
            for text, nlp_artifacts in zip(texts, artifacts, strict=True)
        ]

    def use_processes(self, processes: int, start_method: str = "forkserver") -> None:
        """Share detection with ``processes`` worker processes (0: this process only).

        Worth it for long texts and large batches on a machine with spare cores; each worker
        holds its own copy of the model. Returns once the workers are ready.
        """
        if self._processes is not None:
            if self._processes.processes == processes:
                return
            self._processes.close()
            self._processes = None
        if processes > 0:
            pool = PiecePool(self.model_name, processes, start_method)
            pool.start()
            self._processes = pool

    def _recognizers_for(self, wanted: frozenset[str]) -> tuple[list[EntityRecognizer], list[str]]:
        """The loaded recognizers of ``wanted`` and the entity list they are asked for."""
        chosen = self._recognizers.get(wanted)
        if chosen is None:
            entities = sorted(wanted)
            recognizers = self._engine.registry.get_recognizers(language="en", entities=entities)
            for recognizer in recognizers:
                if not recognizer.is_loaded:
                    recognizer.load()
                    recognizer.is_loaded = True
            chosen = self._recognizers[wanted] = (recognizers, entities)
        return chosen

    def _recognizer_results(
        self, text: str, nlp_artifacts: NlpArtifacts, wanted: frozenset[str]
    ) -> list[RecognizerResult]:
        """What ``AnalyzerEngine.analyze`` returns, without its per-call registry lookup,
        per-result deep copy and decision-process bookkeeping (a third of its time)."""
        recognizers, entities = self._recognizers_for(wanted)
        results: list[RecognizerResult] = []
        for recognizer in recognizers:
            for result in recognizer.analyze(text=text, entities=entities, nlp_artifacts=nlp_artifacts) or ():
                metadata = result.recognition_metadata or {}
                metadata.setdefault(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY, recognizer.id)
                metadata.setdefault(RecognizerResult.RECOGNIZER_NAME_KEY, _name_of(recognizer))
                result.recognition_metadata = metadata
                results.append(result)
        self._enhancer.enhance_in_place(text, results, nlp_artifacts, recognizers)
        return list(EntityRecognizer.remove_duplicates(results))

    def _analyze_segment(
        self,
        text: str,
        nlp_artifacts: NlpArtifacts,
        wanted: frozenset[str],
        min_score: float,
    ) -> list[Span]:
        """Presidio's results for one (normalised) segment, NER hits refined, scores cut."""
        results = self._recognizer_results(text, nlp_artifacts, wanted)
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
        wanted = frozenset(entities)
        if self._cheap(texts, wanted, min_score):
            return self.analyze_batch(texts, wanted, min_score)
        loop = asyncio.get_running_loop()
        call = functools.partial(self.analyze_batch, list(texts), wanted, min_score)
        return await loop.run_in_executor(self._pool(), call)

    def _cheap(self, texts: Sequence[str], wanted: frozenset[str], min_score: float) -> bool:
        """Whether analysing ``texts`` costs less than handing it to a thread."""
        if all_triggered(wanted):
            return sum(len(p.text) for t in texts for p in trigger_pieces(t, wanted)) <= INLINE_CHARS
        return all(self.cache.contains(t, wanted, min_score) for t in texts)

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


def _name_of(recognizer: EntityRecognizer) -> str:
    name: str = recognizer.name  # type: ignore[has-type]  # untyped in Presidio
    return name


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


def get_detector(model: str = "auto", *, warm: bool = True) -> PiiDetector:
    """The process-wide, warmed-up detector for ``model`` (built on first use).

    ``"auto"`` and the name it resolves to share one detector. Construction is serialised
    by a lock (so two first requests never load spaCy twice); analysis is not. With
    ``warm=False`` a new detector is loaded but not warmed up (a server warms it in the
    background while its readiness check says so).
    """
    name = select_spacy_model(model)
    detector = _detectors.get(name)
    if detector is None:
        with _detectors_lock:
            detector = _detectors.get(name)
            if detector is None:
                detector = PiiDetector(name)
                if warm:
                    detector.warm_up()
                _detectors[name] = detector
    return detector
