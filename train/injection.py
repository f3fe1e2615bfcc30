"""Train the prompt-injection model and print its validation report.

    python train/injection.py                  # data from ../shared/data, writes the model
    python train/injection.py --no-write       # report only

Data: ``../shared/data/injection/train.jsonl`` (see its SOURCE.md) and the project-written
examples in ``train/data/injection_extra.txt``.

Method: a logistic regression over hashed word/character n-grams of *windows* of at most
``--window`` words (overlapping by half). Every window of a training text carries the text's
label, weighted so each text counts once; a text's score is its highest window score. The
SOURCE.md warns that jailbreaks are far longer than benign prompts, so the report compares
the model with a length-only model on the same out-of-fold split, per source, and on texts
cut to one window. Validation is 5-fold cross-validation grouped by near-duplicate clusters
(jailbreak templates have many variants); the threshold and calibration come from the
out-of-fold scores only; the shipped model is fitted on all rows with the same settings.
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
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guard.injection import MODEL_NAME, windows
from guard.moderation.linear import FeatureSpec, save_model
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
    read_sections,
    sigmoid,
    table,
    tokenize_all,
)


def load_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = read_jsonl(SHARED / "injection" / "train.jsonl")
    if not args.no_extra:
        for section, text in read_sections(PROJECT_DATA / "injection_extra.txt"):
            rows.append({"text": text, "label": int(section == ("injection",)),
                         "source": "project_written"})
    return rows


def window_matrix(spec: FeatureSpec, tokens: list[list[str]], rows: NDArray[np.int64], size: int,
                  stride: int) -> tuple[sparse.csr_matrix, NDArray[np.int64]]:
    """Features of every window of the given rows, and the row each window belongs to."""
    pieces: list[list[str]] = []
    owner: list[int] = []
    for i in rows:
        for start, end in windows(len(tokens[i]), size, stride):
            pieces.append(tokens[i][start:end])
            owner.append(int(i))
    return hashed_matrix(spec, pieces), np.array(owner, dtype=np.int64)


def fit_windows(x: sparse.csr_matrix, owner: NDArray[np.int64], y: NDArray[np.int64],
                c: float) -> LogisticRegression:
    counts = np.bincount(owner, minlength=y.size)
    weight = 1.0 / counts[owner]
    return fit_head(x, y[owner], weight, c=c)


def compose(pool: list[list[str]], tokens: list[list[str]], y: NDArray[np.int64],
            rows: NDArray[np.int64], size: int, count: int,
            rng: np.random.Generator) -> tuple[list[list[str]], NDArray[np.int64]]:
    """Long ordinary texts, half of them with one short injection hidden inside.

    Benign prompts are short and jailbreaks long, so a model can learn "many words" as a
    signal and flag any long document. Half the composed texts join random texts of ``pool``
    (ordinary sentences, see :func:`benign_pool`) into {size/2}..{4*size} words (label 0);
    the other half hide one short injection from ``rows`` at a random place in such a text
    (label 1), the way an override is appended to a question or buried in a document.
    """
    short_injections = [i for i in rows if y[i] == 1 and 0 < len(tokens[i]) <= size]
    out: list[list[str]] = []
    labels: list[int] = []
    for k in range(count):
        target = int(rng.integers(size // 2, 4 * size))
        text: list[str] = []
        while len(text) < target:
            text += pool[int(rng.integers(len(pool)))]
        if k % 2 and short_injections:
            at = int(rng.integers(len(text) + 1))
            text = text[:at] + tokens[short_injections[int(rng.integers(len(short_injections)))]] + text[at:]
            labels.append(1)
        else:
            labels.append(0)
        out.append(text)
    return out, np.array(labels, dtype=np.int64)


def benign_pool(rng: np.random.Generator) -> tuple[list[list[str]], list[list[str]]]:
    """Ordinary sentences to compose long texts from, split 80/20 into training and probes.

    Texts annotated or assumed safe in the moderation data: Davidson ``neither`` tweets,
    ToxiGen neutral sentences, XSTest safe prompts, benign synthetic seeds and the project's
    own benign examples (``train/data/moderation_extra.txt``). They are statements and
    questions, not instructions to a model. Tweets are half the pool, however many there
    are, so that composed texts do not read like a Twitter timeline.
    """
    tweets: list[str] = []
    other: list[str] = []
    for r in read_jsonl(SHARED / "moderation" / "train.jsonl"):
        if r["source_label"] == "neither":
            tweets.append(r["text"])
        elif r["source_label"].startswith("neutral_") or (
                r["labels"] and len(r["labels"]) == 13 and not any(r["labels"].values())):
            other.append(r["text"])
    other += [t for section, t in read_sections(PROJECT_DATA / "moderation_extra.txt")
              if section == ("benign",)]
    train: list[list[str]] = []
    probe: list[list[str]] = []
    for texts in (tweets, other):
        pool = [t for t in tokenize_all(texts) if t]
        order = rng.permutation(len(pool))
        cut = int(0.8 * len(pool))
        train += _repeat([pool[i] for i in order[:cut]], len(other))
        probe += _repeat([pool[i] for i in order[cut:]], len(other) // 4)
    return train, probe


def _repeat(items: list[list[str]], at_most: int) -> list[list[str]]:
    return items[:at_most]


def windows_of(spec: FeatureSpec, texts: list[list[str]], size: int,
               stride: int) -> tuple[sparse.csr_matrix, NDArray[np.int64]]:
    return window_matrix(spec, texts, np.arange(len(texts)), size, stride)


def fit_fold(spec: FeatureSpec, tokens: list[list[str]], y: NDArray[np.int64],
             train_rows: NDArray[np.int64], pool: list[list[str]], args: argparse.Namespace,
             rng: np.random.Generator) -> LogisticRegression:
    """Windows of the training rows plus composed texts, one logistic regression."""
    size, stride = args.window, max(1, args.window // 2)
    texts = [tokens[i] for i in train_rows]
    labels = y[train_rows]
    if args.compose:
        extra, extra_y = compose(pool, tokens, y, train_rows, size, args.compose, rng)
        texts += extra
        labels = np.r_[labels, extra_y]
    x, owner = windows_of(spec, texts, size, stride)
    return fit_windows(x, owner, labels, args.c)


def probes(pool: list[list[str]], tokens: list[list[str]], y: NDArray[np.int64],
           rows: NDArray[np.int64], size: int,
           rng: np.random.Generator) -> tuple[list[list[str]], NDArray[np.int64]]:
    """Length probes: long texts from the held-out part of the pool, and the same with one
    short injection of the validation fold hidden inside (see :func:`compose`)."""
    return compose(pool, tokens, y, rows, size, 200, rng)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--c", type=float, default=8.0)
    parser.add_argument("--window", type=int, default=32, help="window size in words")
    parser.add_argument("--buckets-log2", type=int, default=18)
    parser.add_argument("--norm-power", type=float, default=0.5)
    parser.add_argument("--compose", type=int, default=2000,
                        help="composed long texts per fold (0 = none), see compose()")
    parser.add_argument("--no-extra", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--report", type=Path, default=ROOT / "train" / "reports" / "injection.md")
    args = parser.parse_args()
    started = time.perf_counter()
    size, stride = args.window, max(1, args.window // 2)

    rows = load_rows(args)
    texts = [r["text"] for r in rows]
    y = np.array([r["label"] for r in rows], dtype=np.int64)
    sources = np.array([r["source"] for r in rows])
    tokens = tokenize_all(texts)
    spec = FeatureSpec(buckets_log2=args.buckets_log2, norm_power=args.norm_power)
    print(f"{len(rows)} rows; {dict(Counter(zip(sources.tolist(), y.tolist(), strict=True)))}", flush=True)

    strata = [f"{s}:{label}" for s, label in zip(sources, y, strict=True)]
    folds, groups = grouped_folds(texts, strata, args.folds)
    print(f"{len(set(groups.tolist()))} near-duplicate groups", flush=True)

    n = len(rows)
    oof = np.full(n, np.nan)
    oof_first = np.full(n, np.nan)     # the same models, scoring only each text's first window
    oof_whole = np.full(n, np.nan)     # a model trained and applied on whole texts, no windows
    length = np.full(n, np.nan)
    log_len = np.log1p(np.array([len(t) for t in texts], dtype=np.float64))[:, None]
    all_rows = np.arange(n)
    xw, owner = window_matrix(spec, tokens, all_rows, size, stride)
    first = np.r_[True, owner[1:] != owner[:-1]]
    x_whole = hashed_matrix(spec, tokens)
    rng = np.random.default_rng(SEED)
    pool, probe_pool = benign_pool(rng)
    probe_y: list[NDArray[np.int64]] = []
    probe_z: list[NDArray[np.float64]] = []
    for fold in range(args.folds):
        test = folds == fold
        train_w = ~test[owner]
        model = fit_fold(spec, tokens, y, np.flatnonzero(~test), pool, args, rng)
        z = model.decision_function(xw[~train_w])
        test_owner = owner[~train_w]
        oof[test] = max_by_owner(z, test_owner, n)[test]
        oof_first[test_owner[first[~train_w]]] = z[first[~train_w]]
        ptexts, plabels = probes(probe_pool, tokens, y, np.flatnonzero(test), size, rng)
        px, powner = windows_of(spec, ptexts, size, stride)
        probe_z.append(max_by_owner(model.decision_function(px), powner, len(ptexts)))
        probe_y.append(plabels)
        whole = fit_head(x_whole[~test], y[~test], np.ones(int((~test).sum())), c=args.c)
        oof_whole[test] = whole.decision_function(x_whole[test])
        lr = LogisticRegression(class_weight="balanced").fit(log_len[~test], y[~test])
        length[test] = lr.decision_function(log_len[test])
        print(f"fold {fold + 1}/{args.folds} done ({time.perf_counter() - started:.0f} s)", flush=True)

    offset, best_f1 = best_f1_threshold(y, oof)
    slope = fit_slope(y, oof, offset)
    report = build_report(y, sources, texts, oof, oof_first, oof_whole, length, offset, args)
    py, pz = np.concatenate(probe_y), np.concatenate(probe_z)
    report += ("\n\nLength probes: ordinary texts of "
               f"{size // 2}-{4 * size} words joined from held-out safe sentences of the moderation data "
               "(never used in training), and the same with one short injection of the validation "
               "fold hidden inside:\n\n" + table([[
                   f"{int((py == 0).sum())} / {int(py.sum())}",
                   fmt(float((pz[py == 0] >= offset).mean())),
                   fmt(float((pz[py == 1] >= offset).mean())),
                   fmt(metrics(py, pz).get("auprc"))]],
                   ["benign / with injection", "benign documents flagged",
                    "hidden injections found", "AUPRC"]))
    report += f"\n\nthreshold (raw) {offset:.3f}, slope {slope:.3f}, out-of-fold F1 at it {best_f1:.3f}"
    report += "\n\n" + operating_points(y, sources, oof, py, pz, offset, slope)
    print(report)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(report + "\n", encoding="utf-8")
    if args.no_write:
        return

    model = fit_fold(spec, tokens, y, all_rows, pool, args, rng)
    folder = ROOT / "guard" / "injection" / "data"
    counts = Counter(zip(sources.tolist(), y.tolist(), strict=True))
    meta = {"windows": {"size": size, "stride": stride},
            "trained_with": {"script": "train/injection.py", "c": args.c, "seed": SEED,
                             "composed_texts": args.compose,
                             "rows": {f"{s}:{label}": k for (s, label), k in sorted(counts.items())}},
            "thresholds": "offset = F1-optimal raw threshold on 5-fold out-of-fold max-window scores"}
    save_model(folder, MODEL_NAME, heads=("injection",), spec=spec, weights=model.coef_[0][:, None],
               dense_names=(), dense=np.zeros((0, 1)), bias=model.intercept_, slope=[slope],
               offset=[offset], meta=meta)
    check_runtime(texts, model, xw, owner, offset, slope)
    size_mb = (folder / f"{MODEL_NAME}.npz").stat().st_size / 1e6
    print(f"wrote {folder / MODEL_NAME}.npz ({size_mb:.2f} MB) in {time.perf_counter() - started:.0f} s")


def check_runtime(texts: list[str], model: LogisticRegression, xw: sparse.csr_matrix,
                  owner: NDArray[np.int64], offset: float, slope: float) -> None:
    from guard.injection import InjectionScorer

    scorer = InjectionScorer.load()
    z = max_by_owner(model.decision_function(xw), owner, len(texts))
    fitted = sigmoid(slope * (z - offset))
    shipped = np.array([scorer.score(t) for t in texts])
    gap = float(np.abs(fitted - shipped).max())
    print(f"runtime check: max |fitted - shipped| score difference = {gap:.4f}")
    if gap > 0.05:
        raise SystemExit("the quantised model differs too much from the fitted one")


def operating_points(y: NDArray[np.int64], sources: NDArray[np.str_], oof: NDArray[np.float64],
                     py: NDArray[np.int64], pz: NDArray[np.float64], offset: float,
                     slope: float) -> str:
    """Precision and recall at score thresholds a policy might use (0.5 = the F1 threshold)."""
    def calibrated(z: NDArray[np.float64]) -> NDArray[np.float64]:
        return sigmoid(slope * (z - offset))

    s, ps = calibrated(oof), calibrated(pz)
    lines = []
    for t in (0.5, 0.8, 0.9):
        row = [f"{t}"]
        for source in ("deepset_prompt_injections", "jackhhao_jailbreak_classification"):
            sel = sources == source
            m = metrics(y[sel], s[sel], t)
            row += [fmt(m["precision"]), fmt(m["recall"])]
        row += [fmt(float((ps[py == 0] >= t).mean())), fmt(float((ps[py == 1] >= t).mean()))]
        lines.append(row)
    return "Operating points (calibrated score thresholds):\n\n" + table(lines, [
        "score >=", "deepset precision", "deepset recall", "jackhhao precision", "jackhhao recall",
        "benign probe documents flagged", "hidden injections found"])


def build_report(y: NDArray[np.int64], sources: NDArray[np.str_], texts: list[str],
                 oof: NDArray[np.float64], first: NDArray[np.float64], whole: NDArray[np.float64],
                 length: NDArray[np.float64], offset: float, args: argparse.Namespace) -> str:
    chars = np.array([len(t) for t in texts], dtype=np.float64)
    out = ["## Prompt-injection model — validation (5-fold grouped cross-validation, out-of-fold)\n",
           f"settings: window={args.window} words (stride {args.window // 2}), C={args.c}, "
           f"norm_power={args.norm_power}, composed={args.compose}, "
           f"extra={'no' if args.no_extra else 'yes'}\n"]
    lines = []
    subsets: list[tuple[str, NDArray[np.bool_]]] = [("all rows", np.ones(y.size, dtype=bool))]
    for source in sorted(set(sources.tolist())):
        subsets.append((source, sources == source))
    jb = sources == "jackhhao_jailbreak_classification"
    band = jb & (chars >= 300) & (chars <= 2000)
    subsets.append(("jackhhao, 300-2000 chars only", band))
    for name, sel in subsets:
        yy = y[sel]
        m = metrics(yy, oof[sel], offset)
        lines.append([name, f"{int(yy.sum())} / {int((yy == 0).sum())}", fmt(m.get("auprc")),
                      fmt(m.get("f1")), fmt(metrics(yy, first[sel]).get("auprc")),
                      fmt(metrics(yy, whole[sel]).get("auprc")),
                      fmt(metrics(yy, length[sel]).get("auprc")),
                      fmt(metrics(yy, chars[sel]).get("auprc"))])
    out.append(table(lines, ["subset", "inj / benign", "AUPRC model (max over windows)",
                             "F1 @threshold", "AUPRC first window only", "AUPRC whole-text model",
                             "AUPRC length-only model", "AUPRC raw length"]))
    return "\n".join(out)


if __name__ == "__main__":
    main()
