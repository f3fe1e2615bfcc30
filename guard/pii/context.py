"""Context words counted around the whole value, before and after it.

Presidio's ``LemmaContextAwareEnhancer`` counts its window from the *first token* of a
value in both directions, so a value spaCy splits into several tokens ("0490 39 07 81",
"28-64-66-98") uses up the window after it on its own digits, and "416 60 039 office" never
sees "office". It also looks each word up in a list (quadratic on long texts). This
enhancer takes ``prefix`` words before the value's first token and ``suffix`` words after
its last one; tokens inside the value never count as its own context, except a token that
straddles its edge ("tel:5550142" is one token).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer, LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts

_SENTENCE_END = frozenset({".", "!", "?", "\n", "\n\n"})


class WindowContextEnhancer(LemmaContextAwareEnhancer):
    """Presidio's lemma context enhancer with a window around the whole value."""

    def __init__(self, prefix: int = 5, suffix: int = 3) -> None:
        super().__init__(context_prefix_count=prefix, context_suffix_count=suffix)

    def enhance_in_place(
        self,
        text: str,
        results: Sequence[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: Sequence[EntityRecognizer],
    ) -> None:
        """Raise the score of each result with a context word of its recognizer nearby.

        Presidio's ``enhance_using_context`` first deep-copies every result with its
        explanation, which cost more than the enhancement itself; the results here are
        fresh from the recognizers and used once, so they are updated where they are.
        """
        by_id = {recognizer.id: recognizer for recognizer in recognizers}
        for result in results:
            metadata = result.recognition_metadata or {}
            recognizer = by_id.get(metadata.get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY, ""))
            if (recognizer is None or not recognizer.context
                    or metadata.get(RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY)):
                continue
            words = self._extract_surrounding_words(nlp_artifacts, text[result.start : result.end],
                                                    result.start)
            if self._find_supportive_word_in_context(words, recognizer.context,
                                                     self.context_matching_mode):
                boosted = max(result.score + self.context_similarity_factor,
                              self.min_score_with_context_similarity)
                result.score = min(boosted, ContextAwareEnhancer.MAX_SCORE)

    def _extract_surrounding_words(self, nlp_artifacts: NlpArtifacts, word: str, start: int) -> list[str]:
        if not nlp_artifacts.tokens:
            return [""]
        indices: list[int] = nlp_artifacts.tokens_indices
        lemmas: list[str] = nlp_artifacts.lemmas
        keywords = _keyword_set(nlp_artifacts)
        end = start + len(word)
        first = max(bisect.bisect_right(indices, start) - 1, 0)  # token holding `start`
        after = bisect.bisect_left(indices, end)  # first token starting at or after `end`
        words: list[str] = []
        # A token straddling an edge of the value may carry context ("tel:5550142").
        for i in {first, after - 1}:
            if 0 <= i < len(lemmas) and (indices[i] < start or indices[i] + len(lemmas[i]) > end):
                words.append(lemmas[i].lower())
        words += _collect(lemmas, keywords, range(first - 1, -1, -1), self.context_prefix_count)
        # Context after a value ends with its sentence: in "order 55-10293. You can reach me at
        # ...", "reach" is about what follows.
        stop = after
        while stop < len(lemmas) and lemmas[stop] not in _SENTENCE_END:
            stop += 1
        words += _collect(lemmas, keywords, range(after, stop), self.context_suffix_count)
        return list(set(words))


def _keyword_set(nlp_artifacts: NlpArtifacts) -> frozenset[str]:
    """The artifacts' keywords as a set, built once per text rather than once per value.

    Cached on the artifacts object, which belongs to one text of one call; two threads never
    share it.
    """
    cached: frozenset[str] | None = getattr(nlp_artifacts, _KEYWORD_SET, None)
    if cached is None:
        cached = frozenset(nlp_artifacts.keywords)
        setattr(nlp_artifacts, _KEYWORD_SET, cached)
    return cached


_KEYWORD_SET = "_guard_keyword_set"


def _collect(lemmas: list[str], keywords: frozenset[str], order: range, limit: int) -> list[str]:
    """The first ``limit`` keyword lemmas met going through ``lemmas`` in ``order``."""
    found: list[str] = []
    for i in order:
        if len(found) >= limit:
            break
        lemma = lemmas[i].lower()
        if lemma in keywords:
            found.append(lemma)
    return found
