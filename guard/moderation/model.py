"""The trained moderation model behind the ``local`` provider.

A linear model (see :mod:`guard.moderation.linear`) with one head per category of
:data:`~guard.moderation.CATEGORIES`, applied to windows of at most 64 words (a longer text
takes each category's highest window score). Its features are hashed word and character n-grams
plus the phrase-rule classifier's own output (:func:`guard.moderation.local.analyse`): its 13
category scores and which of its lexicons and context rules fired. The rules bring what the
training data lacks (hand-written phrase patterns, slur and sexual-term lists); the n-grams
bring what the rules cannot list. For ``hate`` the score is also never below the rules' own
(``rule_floor`` in the model file, a choice measured on validation data). How it was trained
and how well it does is in ``MODELS.md``; ``python train/moderation.py`` rebuilds it.

Example::

    model = ModerationModel.load()
    model.score("I want to kill myself tonight")["self-harm/intent"]  # > 0.5
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import numpy as np
from numpy.typing import NDArray

from guard.errors import ConfigError
from guard.moderation import local_rules as R
from guard.moderation.base import CATEGORIES
from guard.moderation.linear import LinearModel, text_windows
from guard.moderation.local import analyse

MODEL_NAME = "moderation"

_LEXICONS = tuple(sorted(R.LEXICON_EFFECTS))
_CONTEXTS = ("directed_insult", "attack_on_slur", "sexual_with_minor")

DENSE_FEATURES: tuple[str, ...] = (
    *(f"rule:{c}" for c in CATEGORIES),
    *(f"lexicon:{name}" for name in _LEXICONS),
    *(f"context:{name}" for name in _CONTEXTS),
    "minor_terms",
    "rule:sexual*minor_terms",
)
"""The dense features, in model-file order; the file must name exactly these."""


def dense_features(text: str) -> NDArray[np.float32]:
    """The phrase-rule classifier's view of ``text`` as a vector (see :data:`DENSE_FEATURES`)."""
    analysis = analyse(text)
    fired = set(analysis.reasons)
    minor = 1.0 if analysis.minor else 0.0
    sexual = analysis.scores["sexual"]
    return np.array(
        [*(analysis.scores[c] for c in CATEGORIES),
         *(1.0 if f"lexicon:{name}" in fired else 0.0 for name in _LEXICONS),
         *(1.0 if f"context:{name}" in fired else 0.0 for name in _CONTEXTS),
         minor, sexual * minor],
        dtype=np.float32,
    )


class ModerationModel:
    """Scores one text per category with the shipped model (load once, then call often)."""

    def __init__(self, model: LinearModel) -> None:
        if model.heads != CATEGORIES or model.dense_names != DENSE_FEATURES:
            raise ConfigError("the moderation model file does not match this version of Guard's "
                              "categories or features; retrain with train/moderation.py")
        self.model = model
        window = model.meta.get("windows", {})
        self.size = int(window.get("size", 64))
        self.stride = int(window.get("stride", 32))
        if not (0 < self.stride <= self.size):
            raise ConfigError(f"moderation model: bad windows {window!r}")
        self.rule_floor = tuple(model.meta.get("rule_floor", ()))
        unknown = set(self.rule_floor) - set(CATEGORIES)
        if unknown:
            raise ConfigError(f"moderation model: unknown rule_floor categories {sorted(unknown)}")
        self._floor = np.array([c in self.rule_floor for c in CATEGORIES])

    @classmethod
    def load(cls) -> ModerationModel:
        return cls(LinearModel.load("guard.moderation", MODEL_NAME))

    def raw(self, text: str) -> NDArray[np.float64]:
        """Uncalibrated logits per category: the highest over the text's windows."""
        return self._raw_and_rules(text)[0]

    def _raw_and_rules(self, text: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        best: NDArray[np.float64] | None = None
        rules = np.zeros(len(CATEGORIES))
        for tokens, piece in text_windows(text, self.size, self.stride):
            idx, val = self.model.spec.featurize_words(tokens)
            dense = dense_features(piece)
            z = self.model.logits(idx, val, dense)
            best = z if best is None else np.maximum(best, z)
            rules = np.maximum(rules, dense[: len(CATEGORIES)])
        assert best is not None
        return best, rules

    def score(self, text: str) -> Mapping[str, float]:
        """Score per category in [0, 1]; 0.5 is the threshold chosen on validation data.

        For the categories in the model file's ``rule_floor`` (chosen on validation data),
        the score is at least the phrase rules' own score.
        """
        raw, rules = self._raw_and_rules(text)
        scores = self.model.calibrate(raw)
        scores = np.where(self._floor, np.maximum(scores, rules), scores)
        return dict(zip(CATEGORIES, (float(s) for s in scores), strict=True))


@cache
def shipped_model() -> ModerationModel:
    """The model shipped in the package, loaded once per process."""
    return ModerationModel.load()
