"""The spaCy side of detection: a Presidio NLP engine that runs only what detection needs.

Presidio's ``SpacyNlpEngine`` runs the whole pipeline (tok2vec, tagger, parser,
attribute_ruler, lemmatizer, ner) on every text, one text at a time, and downloads missing
models. Detection needs only the entities and the tokens:

- Only the ``ner`` component runs, plus whatever it listens to (the shared transformer of
  ``en_core_web_trf``; the small/large models give ``ner`` its own embedding). On the
  presidio-research synthetic set this returned the same PERSON/LOCATION entities as the
  full pipeline for all but 2 of 1,500 texts (same F1) at about 2.5x the speed.
- Lemmas come from the lemmatizer, which needs the tagger. Presidio uses lemmas only to
  find context words (``"phone"`` near a number) by *substring* match, so the lower-cased
  token serves ("cards" still contains "card").
- NER reads only windows around capitalised words (:mod:`guard.pii.candidates`), batched
  through ``nlp.pipe``; a request with no NER-backed entity is only tokenized.
- The model's matrix products go to numpy's BLAS, one thread, instead of thinc's bundled
  BLIS: on this project's machines (AMD EPYC, AVX2) BLIS ran them 3-4x slower, and NER read
  about 20% more text per second with numpy's. The entities are the same (checked on 1,677
  texts); a last-bit rounding difference could in principle tip a borderline token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import spacy
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from spacy.lang.lex_attrs import is_punct as spacy_is_punct
from spacy.tokens import Doc, Span
from thinc.api import NumpyOps
from threadpoolctl import ThreadpoolController

from guard.pii.candidates import candidate_windows

NER_ENTITY_MAPPING: dict[str, str] = {
    "PERSON": "PERSON",
    "PER": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "ORG": "ORGANIZATION",
    "NORP": "NRP",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
}
"""spaCy (OntoNotes) labels → Presidio entities; every other label is ignored."""

NER_ENTITIES: frozenset[str] = frozenset(NER_ENTITY_MAPPING.values())

_IGNORED_LABELS = (
    "CARDINAL",
    "EVENT",
    "FAC",
    "LANGUAGE",
    "LAW",
    "MONEY",
    "ORDINAL",
    "PERCENT",
    "PRODUCT",
    "QUANTITY",
    "WORK_OF_ART",
)

NER_SCORE = 0.7
"""Score of a spaCy entity (spaCy gives none; Presidio assumes 0.85). Below the structured
recognizers' scores for a well-formed match, so that where NER and, say, the address
recognizer overlap, the structured match wins; above the policy default threshold (0.5)."""

# NER batches: up to 256 texts (measured on short texts: 64 → 24.6k chars/s, 256 → 26.8k,
# 1000 → 27.4k with the sm model) and up to 60k characters, because NER's working memory
# grows with the characters in a batch (256 segments of 20k characters took 4.4 GB; batches
# of 60k characters, 0.4 GB).
_BATCH_TEXTS = 256
_Window = tuple[Doc, int, str]  # (the whole text's doc, offset of the window, window text)
_BATCH_CHARS = 60_000

# spaCy's English stop words that are context words for some recognizer ("call me on ...").
# Presidio drops stop words before looking for context, so without this "call" never counts.
_CONTEXT_STOP_WORDS = frozenset({"call", "name"})


class GuardNlpEngine(SpacyNlpEngine):
    """A ``SpacyNlpEngine`` over one installed English model, trimmed to NER (see module)."""

    def __init__(self, model_name: str) -> None:
        super().__init__(
            models=[{"lang_code": "en", "model_name": model_name}],
            ner_model_configuration=NerModelConfiguration(
                model_to_presidio_entity_mapping=NER_ENTITY_MAPPING,
                labels_to_ignore=list(_IGNORED_LABELS),
                default_score=NER_SCORE,
            ),
        )
        self.model_name = model_name

    def load(self) -> None:
        """Load the model (never download it) and keep only ``ner`` and its inputs."""
        nlp = spacy.load(self.model_name)
        needed = {"ner"}
        for name, component in nlp.pipeline:
            if "ner" in getattr(component, "listening_components", ()):
                needed.add(name)
        nlp.select_pipes(enable=[name for name in nlp.pipe_names if name in needed])
        numpy_ops = NumpyOps(use_blis=False)
        for _, component in nlp.pipeline:
            model = getattr(component, "model", None)
            if model is not None:
                for node in model.walk():
                    node.ops = numpy_ops
        self._pipeline = nlp
        self.nlp = {"en": nlp}  # type: ignore[assignment]  # Presidio types it None until load()
        self._function_words = frozenset(nlp.Defaults.stop_words)
        self._stop_words = self._function_words - _CONTEXT_STOP_WORDS

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        """Presidio's entry point for one text (used only if a caller bypasses batching)."""
        return self.process_many([text], with_ner=True)[0]

    def process_many(self, texts: Sequence[str], *, with_ner: bool,
                     dates: bool = True) -> list[NlpArtifacts]:
        """NLP artifacts for ``texts``; ``with_ner=False`` only tokenizes (much cheaper);
        ``dates=False`` lets NER skip what only a date would need (days of the week).

        With NER, the model reads only the candidate windows of each text
        (:mod:`guard.pii.candidates`), batched across texts; the entities it finds there are
        set on the whole text's tokens.
        """
        nlp = self._pipeline
        docs = [nlp.make_doc(text) for text in texts]
        if with_ner:
            self._recognise(texts, docs, dates=dates)
        return [self._doc_to_nlp_artifact(doc, "en") for doc in docs]

    def _recognise(self, texts: Sequence[str], docs: Sequence[Doc], *, dates: bool) -> None:
        # (``doc.text`` joins every token anew on each use: slice the text instead.)
        windows = [
            (doc, start, text[start:end])
            for text, doc in zip(texts, docs, strict=True)
            for start, end in candidate_windows(text, doc, self._function_words, dates=dates)
        ]
        found: dict[int, list[Span]] = {}
        with _one_blas_thread():
            self._pipe_windows(windows, found)
        for doc in docs:
            doc.ents = found.get(id(doc), [])

    def _pipe_windows(self, windows: Sequence[_Window], found: dict[int, list[Span]]) -> None:
        for batch in _batches(windows):
            pieces = self._pipeline.pipe([text for _, _, text in batch], batch_size=len(batch))
            for (doc, offset, _), piece in zip(batch, pieces, strict=True):
                for ent in piece.ents:
                    span = doc.char_span(offset + ent.start_char, offset + ent.end_char,
                                         label=ent.label_, alignment_mode="expand")
                    if span is not None:
                        found.setdefault(id(doc), []).append(span)

    # Presidio's versions look words up in ``vocab[word]``, which adds every new word of
    # every text to the vocab for the life of the process; these compute without it.
    def is_stopword(self, word: str, language: str) -> bool:
        """Stop words are not context words, except the few that are ("call", "name")."""
        return word.lower() in self._stop_words

    def is_punct(self, word: str, language: str) -> bool:
        """Whether ``word`` is all punctuation (spaCy's lexical ``is_punct``)."""
        return bool(spacy_is_punct(word))

    def _doc_to_nlp_artifact(self, doc: Any, language: str) -> NlpArtifacts:
        entities, scores = self._get_updated_entities(list(doc.ents), self._get_scores_for_entities(doc))
        return NlpArtifacts(
            entities=entities,
            tokens=doc,
            tokens_indices=[token.idx for token in doc],
            lemmas=[token.lower_ for token in doc],
            nlp_engine=self,
            language=language,
            scores=scores,
        )


_blas = ThreadpoolController()


def _one_blas_thread() -> Any:
    """NER's small matrix products run fastest on one BLAS thread; more threads only compete
    with the other requests and processes for the cores. Scoped, so that an application
    embedding Guard keeps its own BLAS settings elsewhere."""
    return _blas.limit(limits=1, user_api="blas")


def _batches(windows: Sequence[_Window]) -> list[list[_Window]]:
    """``windows`` in order, grouped under the NER batch limits (a longer one goes alone)."""
    batches: list[list[_Window]] = []
    chars = 0
    for window in windows:
        size = len(window[2])
        if not batches or len(batches[-1]) >= _BATCH_TEXTS or chars + size > _BATCH_CHARS:
            batches.append([])
            chars = 0
        batches[-1].append(window)
        chars += size
    return batches
