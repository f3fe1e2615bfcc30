"""The ``fast`` profile: characters per second per core, against stock Presidio and ``accurate``.

Texts: the prompts of ``../shared/data/injection/train.jsonl`` (ordinary chat prompts and
jailbreaks written by people, little PII: the traffic a high-volume route sees) and the
presidio-research synthetic set (PII in nearly every sentence: the worst case for the fast
profile's skipping). One process, one batch per corpus, span cache cleared first; stock
Presidio analyses text by text with the same six pattern entities. Target: >= 1 MB/s per
core on ordinary prompts. Timings are printed, never asserted.

    python bench/fast_profile.py [--limit 3000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from stock import stock_presidio

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PATTERNS = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS"]


def corpus(path: Path, limit: int) -> list[str]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f][:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=3000, help="texts per corpus")
    parser.add_argument("--stock-limit", type=int, default=300, help="texts per corpus for stock")
    args = parser.parse_args()

    from guard.pii import get_detector
    from guard.policy import load_policy

    detector = get_detector()
    accurate = load_policy("default").pii.detected_entities
    stock = stock_presidio(detector.model_name)
    corpora = {"ordinary prompts": corpus(SHARED / "injection" / "train.jsonl", args.limit),
               "synthetic PII set": corpus(SHARED / "pii" / "presidio_synth_v2.jsonl", args.limit)}
    print(f"{'chars/s, one core':22s}{'texts':>8s}{'chars':>11s}{'stock':>11s}{'accurate':>11s}"
          f"{'fast':>12s}{'fast/stock':>12s}")
    for name, texts in corpora.items():
        rates = []
        sample = texts[: args.stock_limit]
        started = time.process_time()
        for text in sample:
            stock.analyze(text=text, language="en", entities=PATTERNS)
        rates.append(sum(map(len, sample)) / (time.process_time() - started))
        for entities in (accurate, PATTERNS):
            detector.cache.clear()
            started = time.process_time()
            detector.analyze_batch(texts, entities, 0.5)
            rates.append(sum(map(len, texts)) / (time.process_time() - started))
        print(f"{name:22s}{len(texts):8d}{sum(map(len, texts)):11,d}"
              + "".join(f"{r:11,.0f}" for r in rates[:2]) + f"{rates[2]:12,.0f}{rates[2] / rates[0]:11.0f}x")
    print("\nCPU time of this process (one core); stock on the first "
          f"{args.stock_limit} texts of each corpus.")


if __name__ == "__main__":
    main()
