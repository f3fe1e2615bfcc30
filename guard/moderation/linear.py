"""Hashed n-gram features and linear heads: the numpy runtime of Guard's trained classifiers.

Both offline models (``local`` moderation and the prompt-injection check) are linear models
over the same kind of features, so one small runtime serves both:

- **Features.** The text is normalised like the phrase rules normalise it (NFKC, case
  folding, accents and zero-width characters removed, "k1ll"-style spellings undone) and
  cut into words. Word unigrams and bigrams and character 3- to 5-grams over the words are
  hashed into ``2**buckets_log2`` buckets with a sign bit (feature hashing). The hash is our
  own — CRC-32 for words, a 64-bit polynomial over code points for character n-grams, both
  finished with a multiply-xorshift mixer — so a text maps to the same buckets in every process and on
  every platform; Python's salted ``hash()`` is never used. Features are present or absent
  (a repeated n-gram counts once), and each group (words, word pairs, characters) is scaled
  by ``weight / count ** norm_power`` so long texts do not get large vectors.
- **Windows.** A text longer than a model's window (in words) is scored as overlapping
  windows and each head takes its highest window score (:func:`text_windows`): a long text is
  neither diluted nor inflated by its length.
- **Heads.** One logistic-regression head per output: ``z = w · x + v · d + b`` where ``x``
  are the hashed features and ``d`` a few dense features named in the model file.
  ``sigmoid(slope * (z - offset))`` is the score: ``offset`` is the decision threshold
  chosen on validation data, so a score of 0.5 is that threshold.
- **Files.** ``NAME.npz`` (arrays only, loaded with ``allow_pickle=False``) and ``NAME.json``
  (format, heads, feature settings, dense feature names, the sha256 of the ``.npz`` and a
  summary of the training run). Hashed weights are stored as int8 with one scale per head.

Example::

    model = LinearModel.load("guard.injection", "injection")
    idx, val = model.spec.featurize("Ignore all previous instructions")
    model.scores(idx, val)  # array([0.97...], dtype=float32)
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guard.entities import KNOWN_ENTITIES
from guard.errors import ConfigError
from guard.moderation.local import deobfuscate, normalise

FORMAT = "guard-hashed-linear/1"

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_LABELS = "|".join(sorted(KNOWN_ENTITIES, key=lambda label: (-len(label), label)))
_PLACEHOLDER = re.compile(rf"<({_LABELS})_\d+>('s\b)?|\[({_LABELS})\]")
"""Guard's own pseudonyms and masks (``<PERSON_1>``, ``[EMAIL_ADDRESS]``), see guard.redact;
other bracketed words ("[PROMPT]" in a jailbreak template) are left alone."""
_MAYBE_OBFUSCATED = re.compile(r"[0-9@$!]")
_PRIME = np.uint64(0x100000001B3)
_MIX_A = np.uint64(0xFF51AFD7ED558CCD)
_SHIFT = np.uint64(33)
_SIGN_SHIFT = np.uint64(63)
# One seed per feature group, so "ab" as a word and "ab" as characters land apart.
_SEED_WORD = np.uint64(0x9E3779B97F4A7C15)
_SEED_PAIR = np.uint64(0xD1B54A32D192ED03)
_SEED_CHAR = np.uint64(0x8CB92BA72F3D8DD7)

FloatArray = NDArray[np.float32]
IndexArray = NDArray[np.int64]


_NAMING = re.compile(r"(?i)(?:\b(?:i'm|i am|im|my name is|name's|this is|call me|it's|i'm called|"
                     r"dear|hi|hello|hey|thanks|thank you|regards|cheers|best|sincerely)[\s,:]*)$")
"""Words after which a person placeholder stands for a name, not for someone acted upon."""


def neutralise_placeholders(text: str) -> str:
    """Guard's placeholders read as plain words: a person is "them" (or a name), the rest is
    dropped.

    The classifiers score text after PII redaction but never saw placeholders in training;
    read literally, ``<PERSON_1>`` is the words "person" and "1", which look like neither the
    name it replaced nor anything else they know. "them" keeps "I will hurt <PERSON_1>" a
    threat (the models know threats against pronouns far better than against names), and
    "<PERSON_1>'s" becomes "their"; where
    the placeholder is someone's name being given or greeted ("I'm <PERSON_1>", "Dear
    <PERSON_1>"), a plain first name reads naturally instead. An e-mail address, a phone
    number or a place carries no signal either way and is dropped.
    """
    if "<" not in text and "[" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if (match.group(1) or match.group(3)) != "PERSON":
            return " "
        if match.group(2):
            return "their"
        return "Alex" if _NAMING.search(text, 0, match.start()) else "them"

    return _PLACEHOLDER.sub(replace, text)


def words(text: str) -> list[str]:
    """The normalised words of ``text`` (letters and digits, inner apostrophes kept)."""
    text = normalise(neutralise_placeholders(text))
    if _MAYBE_OBFUSCATED.search(text):
        text = deobfuscate(text)
    return _WORD.findall(text)


def windows(count: int, size: int, stride: int) -> list[tuple[int, int]]:
    """``[start, end)`` word ranges covering ``count`` words, ``size`` long, ``stride`` apart.

    The last window ends at the last word, so every word is in at least one window.

    >>> windows(5, 4, 2)
    [(0, 4), (1, 5)]
    """
    if count <= size:
        return [(0, count)]
    starts = [*range(0, count - size, stride), count - size]
    return [(s, s + size) for s in starts]


def text_windows(text: str, size: int, stride: int) -> list[tuple[list[str], str]]:
    """The words and the text of each window of ``text`` (see :func:`windows`).

    A text of at most ``size`` words is one window: its words and the text itself. Longer
    texts give the normalised text between the first and last word of each window. Guard's
    placeholders are read as words first (:func:`neutralise_placeholders`).
    """
    text = neutralise_placeholders(text)
    normalised = normalise(text)
    if _MAYBE_OBFUSCATED.search(normalised):
        normalised = deobfuscate(normalised)
    matches = list(_WORD.finditer(normalised))
    tokens = [m.group() for m in matches]
    if len(tokens) <= size:
        return [(tokens, text)]
    return [(tokens[a:b], normalised[matches[a].start() : matches[b - 1].end()])
            for a, b in windows(len(tokens), size, stride)]


def _mix(h: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Spread every input bit over the low (bucket) bits and the top (sign) bit.

    Array operations on uint64 wrap silently, which is the arithmetic we want.
    """
    h = h ^ (h >> _SHIFT)
    h = h * _MIX_A
    return h ^ (h >> _SHIFT)


def _word_hashes(tokens: Sequence[str]) -> NDArray[np.uint64]:
    return np.fromiter((zlib.crc32(t.encode("utf-8")) for t in tokens), dtype=np.uint64,
                       count=len(tokens))


def _char_hashes(text: str, sizes: Sequence[int]) -> list[NDArray[np.uint64]]:
    """Polynomial hashes of every character n-gram of ``text``, per size in ``sizes``.

    The (n+1)-grams extend the n-grams, so each size costs two array operations.
    """
    points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.uint64)
    out: list[NDArray[np.uint64]] = []
    h = points + _SEED_CHAR
    for n in range(2, max(sizes, default=0) + 1):
        if h.size <= 1:
            break
        h = h[:-1] * _PRIME + points[n - 1 :]
        if n in sizes:
            out.append(h)
    return out


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """How a text becomes hashed features; stored in the model file and checked on load."""

    buckets_log2: int = 18
    char_ngrams: tuple[int, ...] = (3, 4, 5)
    word_weight: float = 1.0
    pair_weight: float = 1.0
    char_weight: float = 1.0
    norm_power: float = 0.5
    """Each group is scaled by ``weight / count ** norm_power``: 0.5 gives unit length when
    all n-grams differ, 1.0 averages (a window's score then does not grow with its length)."""

    @property
    def buckets(self) -> int:
        return 1 << self.buckets_log2

    def featurize(self, text: str) -> tuple[IndexArray, FloatArray]:
        """Bucket indices and signed values of ``text`` (an index may repeat: values add)."""
        return self.featurize_words(words(text))

    def featurize_words(self, tokens: Sequence[str]) -> tuple[IndexArray, FloatArray]:
        """Like :meth:`featurize`, for words already produced by :func:`words`."""
        if not tokens:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        base = _word_hashes(tokens)
        parts = [base ^ _SEED_WORD, (base[:-1] * _PRIME + base[1:]) ^ _SEED_PAIR,
                 *_char_hashes(" " + " ".join(tokens) + " ", self.char_ngrams)]
        sizes = [p.size for p in parts]
        group = np.repeat(np.array([0, 1, *([2] * (len(parts) - 2))]), sizes)
        # Presence, not counts: a text repeated 100 times scores like the text once.
        hashes, first = np.unique(_mix(np.concatenate(parts)), return_index=True)
        group = group[first]
        counts = np.bincount(group, minlength=3)
        weights = np.array([self.word_weight, self.pair_weight, self.char_weight], dtype=np.float64)
        scaled = (weights / np.maximum(counts, 1) ** self.norm_power).astype(np.float32)
        indices = (hashes & np.uint64(self.buckets - 1)).astype(np.int64)
        signs = np.float32(1.0) - np.float32(2.0) * (hashes >> _SIGN_SHIFT).astype(np.float32)
        return indices, signs * scaled[group]

    def featurize_windows(self, tokens: Sequence[str], bounds: Sequence[tuple[int, int]]
                          ) -> tuple[IndexArray, FloatArray, IndexArray]:
        """:meth:`featurize_words` of ``tokens[a:b]`` for every ``(a, b)`` in ``bounds``, at once.

        Returns the indices and values of all windows one after the other, and the offsets
        where each window's features start (``len(bounds) + 1`` of them): window ``k`` is
        ``indices[offsets[k]:offsets[k + 1]]``, equal to ``featurize_words(tokens[a:b])``
        element for element. Overlapping windows share their n-grams, so every hash is
        computed once over the whole text, each window takes slices of them, and one sort
        of integer keys drops the duplicates of every window: about half the time of a call
        per window (the prompt-injection check cuts a 1 KB prompt into a dozen windows).
        """
        count = len(bounds)
        if not tokens:
            return (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32),
                    np.zeros(count + 1, dtype=np.int64))
        base = _word_hashes(tokens)
        # Where each token sits in " " + " ".join(tokens) + " ": a window's text is a slice
        # of it, and the polynomial hash of an n-gram does not depend on where it starts.
        lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
        starts = np.cumsum(lengths + 1) - lengths
        ends = starts + lengths
        sizes = sorted({n for n in self.char_ngrams if n >= 2})  # as _char_hashes makes them
        chars = _char_hashes(" " + " ".join(tokens) + " ", sizes)
        # A size too long for the whole text has no n-grams in any window either.
        chars += [np.zeros(0, dtype=np.uint64)] * (len(sizes) - len(chars))
        full = [base ^ _SEED_WORD, (base[:-1] * _PRIME + base[1:]) ^ _SEED_PAIR, *chars]
        # Every distinct hash gets a small id, in hash order (as np.unique sorts them).
        distinct, ids = np.unique(_mix(np.concatenate(full)), return_inverse=True)
        n_ids = distinct.size
        # Each window takes one slice [lo, hi) of every part (words, pairs, n-grams of each
        # size), as positions into ``ids``; slices are listed window by window, part by part.
        part_start = np.cumsum([0, *(h.size for h in full[:-1])])
        a = np.array([w[0] for w in bounds], dtype=np.int64)
        b = np.array([w[1] for w in bounds], dtype=np.int64)
        first, last = starts[a] - 1, ends[b - 1] + 1  # the spaces around each window's text
        lo = np.stack([a, a, *(first for _ in sizes)], axis=1)
        hi = np.stack([b, b - 1, *(np.maximum(first, last - n + 1) for n in sizes)], axis=1)
        lo, hi = lo + part_start, hi + part_start
        group = np.minimum(np.arange(lo.shape[1]), 2)  # 0 words, 1 pairs, 2 characters
        length = (hi - lo).ravel()
        at = np.repeat(lo.ravel() - np.cumsum(length) + length, length) + np.arange(length.sum())
        slice_of = np.repeat(np.arange(length.size), length)
        # One integer orders by window, then hash, then group: the first of equal hashes in
        # a window has the lowest group, like the first occurrence np.unique keeps in
        # featurize_words.
        window_of, group_of = slice_of // lo.shape[1], group[slice_of % lo.shape[1]]
        key = np.sort((window_of * n_ids + ids[at]) * 3 + group_of)
        keep = np.ones(key.size, dtype=bool)
        keep[1:] = key[1:] // 3 != key[:-1] // 3
        key = key[keep]
        window, hashes, group = key // (3 * n_ids), distinct[(key // 3) % n_ids], key % 3
        counts = np.bincount(window * 3 + group, minlength=3 * count).reshape(count, 3)
        weights = np.array([self.word_weight, self.pair_weight, self.char_weight], dtype=np.float64)
        scaled = (weights / np.maximum(counts, 1) ** self.norm_power).astype(np.float32)
        indices = (hashes & np.uint64(self.buckets - 1)).astype(np.int64)
        signs = np.float32(1.0) - np.float32(2.0) * (hashes >> _SIGN_SHIFT).astype(np.float32)
        offsets = np.searchsorted(window, np.arange(count + 1, dtype=np.int64))
        return indices, signs * scaled[window, group], offsets.astype(np.int64)

    def to_json(self) -> dict[str, Any]:
        return {"buckets_log2": self.buckets_log2, "char_ngrams": list(self.char_ngrams),
                "word_weight": self.word_weight, "pair_weight": self.pair_weight,
                "char_weight": self.char_weight, "norm_power": self.norm_power}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureSpec:
        return cls(buckets_log2=int(data["buckets_log2"]),
                   char_ngrams=tuple(int(n) for n in data["char_ngrams"]),
                   word_weight=float(data["word_weight"]), pair_weight=float(data["pair_weight"]),
                   char_weight=float(data["char_weight"]),
                   norm_power=float(data.get("norm_power", 0.5)))


def sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """A logistic function that does not overflow for large negative ``z``."""
    z = np.clip(z, -60.0, 60.0)
    result: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-z))
    return result


@dataclass(frozen=True)
class LinearModel:
    """Linear heads over hashed and dense features, read from a ``.npz`` + ``.json`` pair.

    ``weights`` (buckets x heads, int8) times ``scale`` are the hashed-feature weights;
    ``dense`` (dense features x heads) the dense weights. :meth:`logits` is the raw linear
    score, :meth:`scores` the calibrated one (0.5 = the threshold chosen on validation).
    """

    heads: tuple[str, ...]
    spec: FeatureSpec
    weights: NDArray[np.int8]
    scale: FloatArray
    dense_names: tuple[str, ...]
    dense: FloatArray
    bias: FloatArray
    slope: FloatArray
    offset: FloatArray
    meta: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, package: str, name: str) -> LinearModel:
        """Read ``NAME.json`` and ``NAME.npz`` shipped in ``package`` (no network, no pickle)."""
        folder = resources.files(package).joinpath("data")
        try:
            meta = json.loads(folder.joinpath(f"{name}.json").read_text(encoding="utf-8"))
            raw = folder.joinpath(f"{name}.npz").read_bytes()
        except FileNotFoundError as exc:
            raise ConfigError(f"model file missing from the installed package: {exc.filename}; "
                              "reinstall Guard or retrain with train/") from None
        if meta.get("format") != FORMAT:
            raise ConfigError(f"model {name}: format {meta.get('format')!r}, expected {FORMAT!r}")
        if hashlib.sha256(raw).hexdigest() != meta.get("npz_sha256"):
            raise ConfigError(f"model {name}: {name}.npz does not match the sha256 in {name}.json")
        import io

        with np.load(io.BytesIO(raw), allow_pickle=False) as arrays:
            model = cls(
                heads=tuple(meta["heads"]),
                spec=FeatureSpec.from_json(meta["features"]),
                weights=arrays["weights"],
                scale=arrays["scale"].astype(np.float32),
                dense_names=tuple(meta["dense_features"]),
                dense=arrays["dense"].astype(np.float32),
                bias=arrays["bias"].astype(np.float32),
                slope=arrays["slope"].astype(np.float32),
                offset=arrays["offset"].astype(np.float32),
                meta=meta,
            )
        model.check()
        return model

    def check(self) -> None:
        """Shapes agree with each other and with the feature settings."""
        n = len(self.heads)
        ok = (self.weights.dtype == np.int8 and self.weights.shape == (self.spec.buckets, n)
              and self.dense.shape == (len(self.dense_names), n)
              and all(a.shape == (n,) for a in (self.scale, self.bias, self.slope, self.offset)))
        if not ok:
            raise ConfigError("model arrays do not match their metadata; retrain with train/")

    def logits(self, idx: IndexArray, val: FloatArray,
               dense: FloatArray | None = None) -> NDArray[np.float64]:
        """Raw linear scores per head for one text's features."""
        z = (val @ self.weights.take(idx, axis=0).astype(np.float32)).astype(np.float64) * self.scale
        if dense is not None and self.dense.shape[0]:
            z = z + dense.astype(np.float64) @ self.dense
        result: NDArray[np.float64] = z + self.bias
        return result

    def window_logits(self, idx: IndexArray, val: FloatArray,
                      offsets: IndexArray) -> NDArray[np.float64]:
        """:meth:`logits` of every window from :meth:`FeatureSpec.featurize_windows`
        (windows x heads), with the same arithmetic as one :meth:`logits` call per window."""
        rows = self.weights.take(idx, axis=0).astype(np.float32)
        z = np.array([val[a:b] @ rows[a:b] for a, b in pairwise(offsets)],
                     dtype=np.float32).reshape(len(offsets) - 1, len(self.heads))
        result: NDArray[np.float64] = z.astype(np.float64) * self.scale + self.bias
        return result

    def calibrate(self, z: NDArray[np.float64]) -> NDArray[np.float64]:
        """Raw scores to [0, 1]; 0.5 is each head's validation threshold."""
        return sigmoid(self.slope * (z - self.offset))

    def scores(self, idx: IndexArray, val: FloatArray,
               dense: FloatArray | None = None) -> NDArray[np.float64]:
        return self.calibrate(self.logits(idx, val, dense))


def save_model(folder: Any, name: str, *, heads: Sequence[str], spec: FeatureSpec,
               weights: NDArray[np.floating[Any]], dense_names: Sequence[str],
               dense: NDArray[np.floating[Any]], bias: NDArray[np.floating[Any]],
               slope: NDArray[np.floating[Any]], offset: NDArray[np.floating[Any]],
               meta: Mapping[str, Any]) -> dict[str, Any]:
    """Quantise and write a model (used by the training scripts). Returns the JSON written.

    ``weights`` are float (buckets x heads); each head is stored as int8 with scale
    ``max|w| / 127``.
    """
    import io
    from pathlib import Path

    folder = Path(folder)
    weights = np.asarray(weights, dtype=np.float64)
    peak = np.abs(weights).max(axis=0)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    quantised = np.clip(np.rint(weights / scale), -127, 127).astype(np.int8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, weights=quantised, scale=scale,
                        dense=np.asarray(dense, dtype=np.float32).reshape(len(dense_names),
                                                                            len(heads)),
                        bias=np.asarray(bias, dtype=np.float32),
                        slope=np.asarray(slope, dtype=np.float32),
                        offset=np.asarray(offset, dtype=np.float32))
    raw = buffer.getvalue()
    document = {"format": FORMAT, "heads": list(heads), "features": spec.to_json(),
                "dense_features": list(dense_names), "npz_sha256": hashlib.sha256(raw).hexdigest(),
                **meta}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.npz").write_bytes(raw)
    (folder / f"{name}.json").write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
    return document
