"""The one extension type for Guard's own recognizers: a function from text to spans.

Presidio's ``LocalRecognizer`` wants ``RecognizerResult`` objects with metadata and an
explanation (the context enhancer writes into it). Guard's recognizers are plain functions
``find(text) -> [(start, end, score)]``, testable without Presidio; this adapter turns one
into a Presidio recognizer.
"""

from __future__ import annotations

from collections.abc import Callable

from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

Finder = Callable[[str], list[tuple[int, int, float]]]
"""Finds ``(start, end, score)`` spans of one entity in a text."""


class FinderRecognizer(LocalRecognizer):
    """A Presidio recognizer for one entity, backed by a :data:`Finder`.

    ``context`` words (if any) let Presidio's context enhancer raise the score of a span
    that has one of them nearby.
    """

    def __init__(
        self,
        name: str,
        entity: str,
        find: Finder,
        explanation: str,
        context: list[str] | None = None,
    ) -> None:
        self._find = find
        self._explanation = explanation
        self._name = name
        self._entity = entity
        super().__init__(
            supported_entities=[entity],
            supported_language="en",
            context=context,
            name=name,
        )

    def load(self) -> None:
        """Nothing to load: finders compile their patterns at import."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        entity = self._entity
        if entity not in entities:
            return []
        return [
            RecognizerResult(
                entity_type=entity,
                start=start,
                end=end,
                score=score,
                analysis_explanation=AnalysisExplanation(
                    recognizer=self._name,
                    original_score=score,
                    textual_explanation=self._explanation,
                ),
                recognition_metadata={
                    RecognizerResult.RECOGNIZER_NAME_KEY: self._name,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                },
            )
            for start, end, score in self._find(text)
        ]
