"""Accuracy guard on a small hand-written set of chat-style texts (not from any benchmark).

``tests/unit/data/pii_heldout.jsonl``: 77 texts, 110 labelled spans of the eight default
entities (support chats, forms, log lines, requests with no PII at all), scored the way
``/work/shared/bench/pii_eval.py`` scores (entity level, overlap with the same label) at the
policy's default threshold. A drop below the floor means a change made
detection worse on realistic input, whatever it did to the benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path

from guard.pii import get_detector

HELDOUT = Path(__file__).parent / "data" / "pii_heldout.jsonl"
DEFAULT_ENTITIES = {
    "PERSON",
    "LOCATION",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IP_ADDRESS",
    "IBAN_CODE",
}


def test_heldout_micro_f1_stays_above_the_floor() -> None:
    rows = [json.loads(line) for line in HELDOUT.read_text(encoding="utf-8").splitlines()]
    predicted = get_detector().analyze_batch([r["text"] for r in rows], DEFAULT_ENTITIES, 0.5)
    hit_p = n_p = hit_g = n_g = 0
    for row, spans in zip(rows, predicted, strict=True):
        gold = [(g["start"], g["end"], g["label"]) for g in row["spans"]]
        pred = [(s.start, s.end, s.label) for s in spans]

        def overlap(a: tuple[int, int, str], b: tuple[int, int, str]) -> bool:
            return a[0] < b[1] and b[0] < a[1] and a[2] == b[2]

        n_p += len(pred)
        hit_p += sum(any(overlap(p, g) for g in gold) for p in pred)
        n_g += len(gold)
        hit_g += sum(any(overlap(g, p) for p in pred) for g in gold)
    precision, recall = hit_p / n_p, hit_g / n_g
    f1 = 2 * precision * recall / (precision + recall)
    assert f1 >= 0.9, f"held-out micro-F1 {f1:.3f} (P={precision:.3f}, R={recall:.3f})"
