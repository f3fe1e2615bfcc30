"""Train the ``local`` moderation model and print its validation report.

    python train/moderation.py                 # data from ../shared/data, writes the model
    python train/moderation.py --no-write      # report only

Data: ``../shared/data/moderation/train.jsonl`` (see its SOURCE.md), the project-written
examples in ``train/data/moderation_extra.txt``, and the benign prompts of
``../shared/data/injection/train.jsonl`` as assumed negatives.

Method: one L2 logistic regression per category over hashed word/character n-grams and the
phrase-rule classifier's outputs (``guard.moderation.model.dense_features``). Each head
trains only on rows whose label for it is known, plus assumed negatives (documented in
MODELS.md). Validation is 5-fold cross-validation grouped by near-duplicate clusters: every
row is scored once by a model that never saw it or its near-duplicates. Thresholds and
calibration are chosen on those out-of-fold scores only; the shipped model is then fitted
on all rows with the same settings.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guard.moderation.base import CATEGORIES
from guard.moderation.linear import FeatureSpec, save_model, text_windows
from guard.moderation.model import DENSE_FEATURES, MODEL_NAME, dense_features
from train.common import (
    PROJECT_DATA,
    ROOT,
    SEED,
    SHARED,
    best_f1_threshold,
    fit_head,
    fit_slope,
    fmt,
    grouped_folds,
    hashed_matrix,
    max_by_owner,
    metrics,
    read_jsonl,
    read_labelled_sections,
    sigmoid,
    table,
)

UNKNOWN = -1
TARGETED = ("sexual", "hate", "self-harm", "violence", "harassment")
"""Categories with an AUPRC target in the issue; reported first."""


# -- data ---------------------------------------------------------------------------------------


def load_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = read_jsonl(SHARED / "moderation" / "train.jsonl")
    for row in rows:
        row["weight"] = 1.0
    extra = PROJECT_DATA / "moderation_extra.txt"
    if not args.no_extra:
        for section, negative, text in read_labelled_sections(extra):
            benign = section == ("benign",)
            labels = (dict.fromkeys(CATEGORIES, 0) if benign
                      else dict.fromkeys(negative, 0) | dict.fromkeys(section, 1))
            unknown = set(labels) - set(CATEGORIES)
            if unknown:
                raise SystemExit(f"{extra}: unknown categories {sorted(unknown)}")
            rows.append({"text": text, "labels": complete(labels), "source": "project_written",
                         "source_label": ", ".join(section), "weight": args.project_weight})
    for row in read_jsonl(SHARED / "injection" / "train.jsonl"):
        if row["label"] == 0:
            rows.append({"text": row["text"], "labels": None, "source": "injection_benign",
                         "source_label": row["source"], "weight": 1.0})
    return rows


def complete(labels: dict[str, int]) -> dict[str, int]:
    """The shared data's rules: a sub-category sets its parent; a 0 parent zeroes children."""
    out = dict(labels)
    for c in CATEGORIES:
        if "/" in c and out.get(c) == 1:
            out[c.split("/")[0]] = 1
    for c in CATEGORIES:
        if "/" in c and out.get(c.split("/")[0]) == 0:
            out[c] = 0
    return out


def is_weak_negative(row: dict[str, Any]) -> bool:
    """Rows assumed safe for every category although only hate (or nothing) was annotated."""
    return (row["source"] == "injection_benign"
            or row["source_label"] == "neither"
            or row["source_label"].startswith("neutral_"))


def targets(rows: list[dict[str, Any]], args: argparse.Namespace,
            ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """Per row and category: label (1/0/UNKNOWN) and training weight; binary flagged label."""
    n = len(rows)
    y = np.full((n, len(CATEGORIES)), UNKNOWN, dtype=np.int64)
    w = np.zeros((n, len(CATEGORIES)))
    flagged = np.full(n, UNKNOWN, dtype=np.int64)
    for i, row in enumerate(rows):
        labels = row["labels"]
        weak = is_weak_negative(row)
        for j, c in enumerate(CATEGORIES):
            value = labels.get(c) if labels else None
            if value is not None:
                y[i, j] = value
                w[i, j] = row["weight"]
            elif weak:
                y[i, j] = 0
                w[i, j] = args.weak_weight
        if row["source_label"] == "offensive_language":
            w[i, CATEGORIES.index("hate")] *= args.offensive_hate_weight
        if row["source_label"] == "offensive_language" and args.offensive_harassment > 0:
            y[i, CATEGORIES.index("harassment")] = 1
            w[i, CATEGORIES.index("harassment")] = args.offensive_harassment
        if labels == {} or (labels and any(v == 1 for v in labels.values())):
            flagged[i] = 1
        elif weak or (labels and len(labels) == len(CATEGORIES)):
            flagged[i] = 0
    return y, w, flagged


def stratum(row: dict[str, Any]) -> str:
    labels = row["labels"] or {}
    positive = sorted(c for c, v in labels.items() if v == 1)
    return f"{row['source']}:{positive[0] if positive else ('unsafe' if labels == {} else 'safe')}"


def make_folds(rows: list[dict[str, Any]], k: int, seed: int = SEED) -> NDArray[np.int64]:
    strata = [stratum(r) for r in rows]
    counts = Counter(strata)
    strata = [s if counts[s] >= k else s.split(":")[0] for s in strata]
    return grouped_folds([r["text"] for r in rows], strata, k, seed)[0]


# -- training -----------------------------------------------------------------------------------


def design(hashed: sparse.csr_matrix, dense: NDArray[np.float32], scale: float) -> sparse.csr_matrix:
    if scale == 0:
        return hashed
    return sparse.hstack([hashed, sparse.csr_matrix(dense * scale)], format="csr")


def fit_all(x: sparse.csr_matrix, y: NDArray[np.int64], w: NDArray[np.float64],
            train: NDArray[np.bool_], c: float, balance: float = 1.0) -> list[Any]:
    heads = []
    for j in range(len(CATEGORIES)):
        rows = train & (y[:, j] != UNKNOWN)
        heads.append(fit_head(x[rows], y[rows, j], w[rows, j], c=c, balance=balance))
    return heads


def predict_all(heads: list[Any], x: sparse.csr_matrix) -> NDArray[np.float64]:
    return np.column_stack([h.decision_function(x) for h in heads])


def length_only(texts: list[str], y: NDArray[np.int64], folds: NDArray[np.int64]) -> NDArray[np.float64]:
    """Out-of-fold scores of a logistic regression on log(characters) alone, per category."""
    from sklearn.linear_model import LogisticRegression

    feature = np.log1p(np.array([len(t) for t in texts], dtype=np.float64))[:, None]
    out = np.full(y.shape, np.nan)
    for j in range(y.shape[1]):
        for fold in np.unique(folds):
            train = (folds != fold) & (y[:, j] != UNKNOWN)
            if len(np.unique(y[train, j])) < 2:
                continue
            lr = LogisticRegression(class_weight="balanced").fit(feature[train], y[train, j])
            out[folds == fold, j] = lr.decision_function(feature[folds == fold])
    return out


# -- report -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3,
                        help="cross-validation repetitions with other fold seeds (spread)")
    parser.add_argument("--project-weight", type=float, default=1.0,
                        help="training weight of the project-written examples")
    parser.add_argument("--c", type=float, default=16.0, help="inverse L2 strength")
    parser.add_argument("--balance", type=float, default=1.0,
                        help="class balancing power (1 = equal total weight, 0 = none)")
    parser.add_argument("--dense-scale", type=float, default=1.0,
                        help="scale of the rule features (0 = n-grams only)")
    parser.add_argument("--weak-weight", type=float, default=1.0,
                        help="weight of assumed negatives")
    parser.add_argument("--offensive-harassment", type=float, default=0.0,
                        help="weight of Davidson offensive_language as harassment positives (0=unused)")
    parser.add_argument("--offensive-hate-weight", type=float, default=0.3,
                        help="weight of Davidson offensive_language rows as hate negatives")
    parser.add_argument("--buckets-log2", type=int, default=18)
    parser.add_argument("--window", type=int, default=64, help="window size in words")
    parser.add_argument("--no-extra", action="store_true", help="leave out train/data examples")
    parser.add_argument("--no-write", action="store_true", help="report only")
    parser.add_argument("--save-oof", type=Path, default=None, help="save out-of-fold scores")
    parser.add_argument("--rule-floor", nargs="*", default=["hate"], choices=CATEGORIES,
                        help="categories whose score is at least the phrase rules' score")
    parser.add_argument("--report", type=Path, default=ROOT / "train" / "reports" / "moderation.md")
    args = parser.parse_args()
    started = time.perf_counter()

    rows = load_rows(args)
    texts = [r["text"] for r in rows]
    y, w, flagged = targets(rows, args)
    sources = np.array([r["source"] for r in rows])
    print(f"{len(rows)} rows; sources: {dict(Counter(sources.tolist()))}", flush=True)

    spec = FeatureSpec(buckets_log2=args.buckets_log2)
    size, stride = args.window, args.window // 2
    token_lists: list[list[str]] = []
    pieces: list[str] = []
    owners: list[int] = []
    for i, text in enumerate(texts):
        for tokens, piece in text_windows(text, size, stride):
            token_lists.append(tokens)
            pieces.append(piece)
            owners.append(i)
    owner = np.array(owners, dtype=np.int64)
    per_text = np.bincount(owner, minlength=len(texts))
    hashed = hashed_matrix(spec, token_lists)
    dense = np.vstack([dense_features(p) for p in pieces]).astype(np.float32)
    # The phrase rules as they ran before the model: whole texts, not windows.
    rule_scores = np.vstack([dense_features(t)[: len(CATEGORIES)] if per_text[i] > 1
                             else dense[np.flatnonzero(owner == i)[0], : len(CATEGORIES)]
                             for i, t in enumerate(texts)]).astype(np.float64)
    x = design(hashed, dense, args.dense_scale)
    yw, ww = y[owner], w[owner] / per_text[owner, None]
    print(f"features ready: {x.shape[0]} windows of {len(texts)} texts "
          f"({time.perf_counter() - started:.0f} s)", flush=True)

    repeats: list[NDArray[np.float64]] = []
    for r in range(args.repeats):
        folds = make_folds(rows, args.folds, SEED + r)
        oof = np.full(y.shape, np.nan)
        for fold in range(args.folds):
            test = folds == fold
            heads = fit_all(x, yw, ww, ~test[owner], args.c, args.balance)
            held = test[owner]
            oof[test] = max_by_owner(predict_all(heads, x[held]), owner[held], len(texts))[test]
            print(f"repeat {r + 1}/{args.repeats}, fold {fold + 1}/{args.folds} done "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        if r == 0:
            length = length_only(texts, y, folds)
        repeats.append(oof)
    oof = repeats[0]

    # Thresholds and calibration from out-of-fold scores only.
    offsets, slopes = np.zeros(len(CATEGORIES)), np.ones(len(CATEGORIES))
    for j in range(len(CATEGORIES)):
        known = y[:, j] != UNKNOWN
        offsets[j], _ = best_f1_threshold(y[known, j], oof[known, j])
        slopes[j] = fit_slope(y[known, j], oof[known, j], offsets[j])
    unfloored = sigmoid(slopes * (oof - offsets))
    floor = np.array([c in args.rule_floor for c in CATEGORIES])
    calibrated = np.where(floor, np.maximum(unfloored, rule_scores), unfloored)
    if args.save_oof:
        np.savez_compressed(args.save_oof, oof=oof, y=y, flagged=flagged, rules=rule_scores,
                            offsets=offsets, slopes=slopes, sources=sources)

    report = build_report(rows, y, flagged, sources, calibrated, rule_scores, length, args)
    report += "\n\n" + floor_report(y, flagged, sources, unfloored, calibrated, args)
    if len(repeats) > 1:
        report += "\n\n" + spread(y, flagged, [
            np.where(floor, np.maximum(sigmoid(slopes * (o - offsets)), rule_scores),
                     sigmoid(slopes * (o - offsets))) for o in repeats])
    print(report)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(report + "\n", encoding="utf-8")

    if args.no_write:
        return
    heads = fit_all(x, yw, ww, np.ones(x.shape[0], dtype=bool), args.c, args.balance)
    n_hashed = spec.buckets
    coef = np.column_stack([h.coef_[0] for h in heads])
    bias = np.array([h.intercept_[0] for h in heads])
    meta = {
        "trained_with": {"script": "train/moderation.py", "c": args.c, "dense_scale": args.dense_scale,
                         "weak_weight": args.weak_weight, "balance": args.balance,
                         "offensive_harassment": args.offensive_harassment,
                         "offensive_hate_weight": args.offensive_hate_weight,
                         "project_weight": args.project_weight, "seed": SEED,
                         "rows": dict(Counter(sources.tolist()))},
        "windows": {"size": size, "stride": stride},
        "thresholds": "per category: F1-optimal raw threshold on 5-fold out-of-fold scores; score 0.5 = it",
        "rule_floor": list(args.rule_floor),
    }
    folder = ROOT / "guard" / "moderation" / "data"
    save_model(folder, MODEL_NAME, heads=CATEGORIES, spec=spec, weights=coef[:n_hashed],
               dense_names=DENSE_FEATURES, dense=coef[n_hashed:] * args.dense_scale,
               bias=bias, slope=slopes, offset=offsets, meta=meta)
    check_runtime(texts, x, owner, dense[:, : len(CATEGORIES)].astype(np.float64), heads,
                  offsets, slopes)
    size = (folder / f"{MODEL_NAME}.npz").stat().st_size
    print(f"wrote {folder / MODEL_NAME}.npz ({size / 1e6:.2f} MB) in {time.perf_counter() - started:.0f} s")


def check_runtime(texts: list[str], x: sparse.csr_matrix, owner: NDArray[np.int64],
                  rule_window_scores: NDArray[np.float64], heads: list[Any],
                  offsets: NDArray[np.float64], slopes: NDArray[np.float64]) -> None:
    """The shipped (quantised) model, run through the runtime, agrees with the fitted one."""
    from guard.moderation.model import ModerationModel

    model = ModerationModel.load()
    rng = np.random.default_rng(SEED)
    sample = rng.choice(len(texts), size=min(500, len(texts)), replace=False)
    long_texts = np.flatnonzero(np.bincount(owner, minlength=len(texts)) > 1)[:50]
    sample = np.unique(np.r_[sample, long_texts])
    rows = np.isin(owner, sample)
    fitted_all = max_by_owner(predict_all(heads, x[rows]), owner[rows], len(texts))
    fitted = sigmoid(slopes * (fitted_all[sample] - offsets))
    floor = np.array([c in model.rule_floor for c in CATEGORIES])
    rule_all = max_by_owner(rule_window_scores, owner, len(texts))
    fitted = np.where(floor, np.maximum(fitted, rule_all[sample]), fitted)
    shipped = np.vstack([list(model.score(texts[i]).values()) for i in sample])
    gap = float(np.abs(fitted - shipped).max())
    print(f"runtime check: max |fitted - shipped| score difference over 500 rows = {gap:.4f}")
    if gap > 0.05:
        raise SystemExit("the quantised model differs too much from the fitted one")


def floor_report(y: NDArray[np.int64], flagged: NDArray[np.int64], sources: NDArray[np.str_],
                 unfloored: NDArray[np.float64], floored: NDArray[np.float64],
                 args: argparse.Namespace) -> str:
    """What the rule floor does: binary figures, benign false flags, the floored categories."""
    known = flagged != UNKNOWN
    benign = np.isin(sources, ["injection_benign", "xstest", "project_written",
                               "synthetic_seeds"]) & (flagged == 0)
    lines = []
    for name, scores in (("model alone", unfloored),
                         (f"model, floor {', '.join(args.rule_floor) or '(none)'}", floored)):
        b = scores.max(axis=1)
        m = metrics(flagged[known], b[known], 0.5)
        row = [name, fmt(m["auprc"]), fmt(m["f1"]), fmt(m["precision"]), fmt(m["recall"]),
               fmt(float((b[benign] >= 0.5).mean()))]
        for c in args.rule_floor:
            j = CATEGORIES.index(c)
            k = y[:, j] != UNKNOWN
            row.append(fmt(metrics(y[k, j], scores[k, j]).get("auprc")))
        lines.append(row)
    return ("Rule floor (a category's score is at least the phrase rules' score for it):\n\n"
            + table(lines, ["scorer", "binary AUPRC", "binary F1 @0.5", "precision", "recall",
                            "benign prompts flagged",
                            *(f"{c} AUPRC" for c in args.rule_floor)]))


def spread(y: NDArray[np.int64], flagged: NDArray[np.int64],
           runs: list[NDArray[np.float64]]) -> str:
    """How much the figures move when the folds are drawn again (mean and range)."""
    lines = []
    order = [*TARGETED, *(c for c in CATEGORIES if c not in TARGETED)]
    for c in order:
        j = CATEGORIES.index(c)
        known = y[:, j] != UNKNOWN
        values = [metrics(y[known, j], run[known, j]).get("auprc", np.nan) for run in runs]
        lines.append([c, fmt(float(np.mean(values))), f"{fmt(min(values))} - {fmt(max(values))}"])
    known = flagged != UNKNOWN
    auprc = [metrics(flagged[known], run[known].max(axis=1))["auprc"] for run in runs]
    f1 = [metrics(flagged[known], run[known].max(axis=1), 0.5)["f1"] for run in runs]
    for name, values in (("binary flagged AUPRC", auprc), ("binary flagged F1 @0.5", f1)):
        lines.append([name, fmt(float(np.mean(values))), f"{fmt(min(values))} - {fmt(max(values))}"])
    return (f"Model AUPRC over {len(runs)} repetitions of the cross-validation with different "
            "fold seeds (thresholds from the first):\n\n" + table(lines, ["", "mean", "range"]))


def build_report(rows: list[dict[str, Any]], y: NDArray[np.int64], flagged: NDArray[np.int64],
                 sources: NDArray[np.str_], model: NDArray[np.float64], rules: NDArray[np.float64],
                 length: NDArray[np.float64], args: argparse.Namespace) -> str:
    third_party = ~np.isin(sources, ["project_written", "synthetic_seeds"])
    out: list[str] = []
    out.append("## Moderation model — validation (5-fold grouped cross-validation, out-of-fold)\n")
    out.append(f"settings: C={args.c}, balance={args.balance}, dense_scale={args.dense_scale}, "
               f"weak_weight={args.weak_weight}, "
               f"offensive_harassment={args.offensive_harassment}, "
               f"offensive_hate_weight={args.offensive_hate_weight}, project_weight={args.project_weight}, "
               f"rule_floor={args.rule_floor}, extra={'no' if args.no_extra else 'yes'}\n")
    header = ["category", "pos / neg", "AUPRC model", "AUPRC rules", "AUPRC max(model, rules)",
              "AUPRC length", "F1 model @0.5", "F1 rules @0.5", "AUPRC model (3rd-party rows)",
              "pos / neg (3rd-party)"]
    both = np.maximum(model, rules)
    lines = []
    order = [*TARGETED, *(c for c in CATEGORIES if c not in TARGETED)]
    for c in order:
        j = CATEGORIES.index(c)
        known = y[:, j] != UNKNOWN
        yy = y[known, j]
        m = metrics(yy, model[known, j], 0.5)
        r = metrics(yy, rules[known, j], 0.5)
        ln = metrics(yy[~np.isnan(length[known, j])], length[known, j][~np.isnan(length[known, j])])
        tp = known & third_party
        t = metrics(y[tp, j], model[tp, j])
        mx = metrics(yy, both[known, j])
        lines.append([c, f"{int(yy.sum())} / {int((yy == 0).sum())}", fmt(m.get("auprc")),
                      fmt(r.get("auprc")), fmt(mx.get("auprc")), fmt(ln.get("auprc")),
                      fmt(m.get("f1")), fmt(r.get("f1")),
                      fmt(t.get("auprc")), f"{int(y[tp, j].sum())} / {int((y[tp, j] == 0).sum())}"])
    out.append("Per category (rows whose label is known, including assumed negatives):\n")
    out.append(table(lines, header))

    j = CATEGORIES.index("hate")
    offensive = np.array([r["source_label"] == "offensive_language" for r in rows])
    lines = []
    for name, sel in (("all rows with a hate label", y[:, j] != UNKNOWN),
                      ("Davidson tweets: hate vs offensive + neither",
                       (sources == "davidson_hate_offensive")),
                      ("Davidson tweets: hate vs neither", (sources == "davidson_hate_offensive")
                       & ~offensive),
                      ("ToxiGen sentences: hate vs neutral", sources == "toxigen_prompts"),
                      ("all rows except Davidson offensive_language", (y[:, j] != UNKNOWN)
                       & ~offensive),
                      ("project-written (hate vs its own negatives)",
                       (sources == "project_written") & (y[:, j] != UNKNOWN))):
        m = metrics(y[sel, j], model[sel, j])
        r = metrics(y[sel, j], rules[sel, j])
        lines.append([name, f"{int(y[sel, j].sum())} / {int((y[sel, j] == 0).sum())}",
                      fmt(m.get("auprc")), fmt(r.get("auprc"))])
    out.append("\nHate, by source (Davidson's offensive_language tweets are hate=0 but full of slurs):\n")
    out.append(table(lines, ["rows", "pos / neg", "AUPRC model", "AUPRC rules"]))

    known = flagged != UNKNOWN
    fb = flagged[known]
    model_any = model[known].max(axis=1)
    rules_any = rules[known].max(axis=1)
    lengths = np.array([len(r["text"]) for r in rows], dtype=np.float64)[known]
    lines = []
    for name, score in (("model (max over categories)", model_any),
                        ("phrase rules (current `local`)", rules_any),
                        ("max(model, rules)", np.maximum(model_any, rules_any))):
        m = metrics(fb, score, 0.5)
        lines.append([name, fmt(m.get("auprc")), fmt(m.get("f1")), fmt(m.get("precision")),
                      fmt(m.get("recall"))])
    ln_auprc = max(metrics(fb, lengths)["auprc"], metrics(fb, -lengths)["auprc"])
    lines.append(["length only (better direction)", fmt(ln_auprc), "-", "-", "-"])
    out.append(f"\nBinary flagged ({int(fb.sum())} flagged / {int((fb == 0).sum())} not):\n")
    out.append(table(lines, ["scorer", "AUPRC", "F1 @0.5", "precision", "recall"]))

    lines = []
    src_known = sources[known]
    for source in sorted(set(src_known.tolist())):
        sel = src_known == source
        m = metrics(fb[sel], model_any[sel], 0.5)
        r = metrics(fb[sel], rules_any[sel], 0.5)
        rate = lambda s, v: float(((s >= 0.5) == v).mean()) if v is not None else float("nan")  # noqa: E731
        lines.append([source, f"{int(fb[sel].sum())} / {int((fb[sel] == 0).sum())}",
                      fmt(m.get("auprc")), fmt(r.get("auprc")),
                      fmt(rate(model_any[sel][fb[sel] == 1], True)),
                      fmt(rate(rules_any[sel][fb[sel] == 1], True)),
                      fmt(rate(model_any[sel][fb[sel] == 0], True)),
                      fmt(rate(rules_any[sel][fb[sel] == 0], True))])
    out.append("\nBinary flagged per source:\n")
    out.append(table(lines, ["source", "flagged / not", "AUPRC model", "AUPRC rules",
                             "recall model", "recall rules", "false-flag rate model",
                             "false-flag rate rules"]))
    return "\n".join(out)


if __name__ == "__main__":
    main()
