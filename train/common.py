"""Shared pieces of the training scripts: data loading, near-duplicate groups, features,
logistic-regression heads, threshold choice and metrics.

Training needs scikit-learn (``pip install -e ".[train]"``); Guard at run time does not.
Everything is seeded; the same data gives the same model files byte for byte.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score
from sklearn.model_selection import StratifiedGroupKFold

from guard.moderation.linear import FeatureSpec, words

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
PROJECT_DATA = ROOT / "train" / "data"
SEED = 20240611


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip() and not line.startswith("//")]


def read_sections(path: Path) -> list[tuple[tuple[str, ...], str]]:
    """Examples from a project-written file: ``@ labels: a, b`` heads a section of lines."""
    return [(labels, text) for labels, _, text in read_labelled_sections(path)]


def read_labelled_sections(path: Path) -> list[tuple[tuple[str, ...], tuple[str, ...], str]]:
    """``(positive labels, negative labels, text)`` per example of a project-written file.

    A section starts with ``@ labels: a, b`` or ``@ labels: a, b; not: c, d``.
    """
    out: list[tuple[tuple[str, ...], tuple[str, ...], str]] = []
    section: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@ labels:"):
            head, _, rest = line.removeprefix("@ labels:").partition(";")
            negative = rest.strip().removeprefix("not:") if rest.strip() else ""
            section = (tuple(p.strip() for p in head.split(",") if p.strip()),
                       tuple(p.strip() for p in negative.split(",") if p.strip()))
            continue
        if section is None:
            raise ValueError(f"{path}:{number}: example before the first '@ labels:' line")
        out.append((section[0], section[1], line))
    return out


# -- near-duplicate groups --------------------------------------------------------------------

_SHINGLE_WORD = re.compile(r"[a-z0-9]+")


def _shingles(text: str, n: int = 3) -> set[str]:
    tokens = _SHINGLE_WORD.findall(text.lower())
    if len(tokens) < n:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def near_duplicate_groups(texts: Sequence[str], *, jaccard: float = 0.5,
                          containment: float = 0.8, max_df: int = 40) -> NDArray[np.int64]:
    """A group id per text: texts sharing most word trigrams end up in one group.

    Two texts are linked when the Jaccard similarity of their word-trigram sets is at least
    ``jaccard`` or one contains ``containment`` of the other's trigrams; groups are the
    connected components. Trigrams found in more than ``max_df`` texts are not used to find
    candidates (template boilerplate), but still count in the similarity. Splitting by these
    groups keeps variants of one jailbreak template or one AdvBench request on one side.
    """
    sets = [_shingles(t) for t in texts]
    index: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        for sh in s:
            index[sh].append(i)
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, s in enumerate(sets):
        if not s:
            continue
        shared: Counter[int] = Counter()
        for sh in s:
            posting = index[sh]
            if len(posting) > max_df:
                continue
            for j in posting:
                if j > i:
                    shared[j] += 1
        for j in shared:
            inter = len(s & sets[j])
            union = len(s | sets[j])
            smaller = min(len(s), len(sets[j]))
            if inter / union >= jaccard or inter / smaller >= containment:
                parent[find(i)] = find(j)
    roots = [find(i) for i in range(len(texts))]
    ids = {r: k for k, r in enumerate(dict.fromkeys(roots))}
    return np.array([ids[r] for r in roots], dtype=np.int64)


def grouped_folds(texts: Sequence[str], strata: Sequence[str], k: int,
                  seed: int = SEED) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """A fold number per text (0..k-1), stratified by ``strata``, and the near-duplicate
    groups it kept whole: no group is split between folds."""
    groups = near_duplicate_groups(texts)
    folds = np.zeros(len(texts), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(texts)), strata, groups)):
        folds[test] = fold
    return folds, groups


# -- features ---------------------------------------------------------------------------------


def hashed_matrix(spec: FeatureSpec, token_lists: Iterable[Sequence[str]]) -> sparse.csr_matrix:
    """The runtime's own features (same code path) as a sparse matrix."""
    data: list[NDArray[np.float32]] = []
    cols: list[NDArray[np.int64]] = []
    indptr = [0]
    for tokens in token_lists:
        idx, val = spec.featurize_words(tokens)
        cols.append(idx)
        data.append(val)
        indptr.append(indptr[-1] + idx.size)
    matrix = sparse.csr_matrix(
        (np.concatenate(data) if data else np.zeros(0, np.float32),
         np.concatenate(cols) if cols else np.zeros(0, np.int64), np.array(indptr)),
        shape=(len(indptr) - 1, spec.buckets), dtype=np.float64)
    matrix.sum_duplicates()
    return matrix


def tokenize_all(texts: Sequence[str]) -> list[list[str]]:
    return [words(t) for t in texts]


def max_by_owner(z: NDArray[np.float64], owner: NDArray[np.int64], n: int) -> NDArray[np.float64]:
    """Per text (and head, when ``z`` has a column per head), the highest score over the
    text's windows; ``owner`` is the text of each window, ``n`` the number of texts."""
    out = np.full((n, *z.shape[1:]), -np.inf)
    np.maximum.at(out, owner, z)
    return out


# -- heads ------------------------------------------------------------------------------------


def fit_head(x: sparse.csr_matrix, y: NDArray[np.int64], weight: NDArray[np.float64], *,
             c: float, balance: float = 1.0) -> LogisticRegression:
    """One L2 logistic regression with the rarer class up-weighted.

    ``balance`` 1.0 makes positives and negatives weigh the same in total; 0.5 up-weights the
    rarer class by the square root of that factor only (its few examples then stamp less of
    their wording on the head); 0 leaves the weights alone.
    """
    weight = weight.astype(np.float64).copy()
    pos, neg = weight[y == 1].sum(), weight[y == 0].sum()
    if balance > 0 and pos > 0 and neg > 0:
        weight[y == 1] *= ((pos + neg) / (2 * pos)) ** balance
        weight[y == 0] *= ((pos + neg) / (2 * neg)) ** balance
    model = LogisticRegression(C=c, solver="liblinear", dual=True, max_iter=5000,
                               random_state=SEED)
    model.fit(x, y, sample_weight=weight)
    return model


def decision(model: LogisticRegression, x: sparse.csr_matrix) -> NDArray[np.float64]:
    result: NDArray[np.float64] = model.decision_function(x)
    return result


# -- thresholds, calibration, metrics ---------------------------------------------------------


def best_f1_threshold(y: NDArray[np.int64], z: NDArray[np.float64]) -> tuple[float, float]:
    """The raw-score threshold with the highest F1 on (y, z), and that F1."""
    order = np.argsort(-z, kind="mergesort")
    zs, ys = z[order], y[order]
    tp = np.cumsum(ys)
    fp = np.cumsum(1 - ys)
    positives = max(int(ys.sum()), 1)
    f1 = 2 * tp / (tp + fp + positives)
    # Only cut between distinct scores.
    distinct = np.r_[zs[1:] != zs[:-1], True]
    f1 = np.where(distinct, f1, -1.0)
    k = int(np.argmax(f1))
    nxt = zs[k + 1] if k + 1 < zs.size else zs[k] - 1.0
    return float((zs[k] + nxt) / 2), float(f1[k])


def sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    result: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))
    return result


def fit_slope(y: NDArray[np.int64], z: NDArray[np.float64], offset: float) -> float:
    """The slope ``a`` that makes ``sigmoid(a * (z - offset))`` best calibrated (log loss)."""
    best, best_loss = 1.0, float("inf")
    for a in np.exp(np.linspace(np.log(0.05), np.log(20.0), 241)):
        p = sigmoid(a * (z - offset))
        p = np.clip(p, 1e-9, 1 - 1e-9)
        loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        if loss < best_loss:
            best, best_loss = float(a), float(loss)
    return best


def metrics(y: NDArray[np.int64], score: NDArray[np.float64],
            threshold: float | None = None) -> dict[str, float]:
    """AUPRC (average precision), and F1 / precision / recall at ``threshold`` if given."""
    out: dict[str, float] = {"n": float(y.size), "positives": float(y.sum())}
    if 0 < y.sum() < y.size:
        out["auprc"] = float(average_precision_score(y, score))
        out["base_rate"] = float(y.mean())
    if threshold is not None:
        pred = (score >= threshold).astype(int)
        out["f1"] = float(f1_score(y, pred, zero_division=0))
        out["precision"] = float(precision_score(y, pred, zero_division=0))
        out["recall"] = float(recall_score(y, pred, zero_division=0))
    return out


def fmt(value: float | None) -> str:
    return "-" if value is None or np.isnan(value) else f"{value:.3f}"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
            for r in rows]
    return "\n".join([line, sep, *body])


def oof_predict(n_rows: int, folds: NDArray[np.int64],
                fit_predict: Callable[[NDArray[np.bool_], NDArray[np.bool_]], NDArray[np.float64]],
                ) -> NDArray[np.float64]:
    """Out-of-fold predictions: each row scored by a model trained without its fold."""
    out = np.full(n_rows, np.nan)
    for fold in np.unique(folds):
        test = folds == fold
        out[test] = fit_predict(~test, test)
    return out
