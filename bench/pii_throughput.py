"""PII detection speed: Guard's detector against stock Presidio, on the same texts.

Prints, for each, the latency of one call per text (p50 and p95, one text being one chat
message) and the throughput in characters per second, then Guard's ratios against stock.
Stock Presidio is configured as ``/work/shared/bench/pii_eval.py`` configures it (default
recognizers, same spaCy model); both use the eight default entities. Model loading and
warm-up are not timed.

    python bench/pii_throughput.py [DATA.jsonl] [--limit 500]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Callable

from stock import ENTITIES, stock_presidio

DEFAULT_DATA = "/work/shared/data/pii/presidio_synth_v2.jsonl"


def measure(name: str, call: Callable[[str], object], texts: list[str]) -> tuple[float, float]:
    """Time ``call`` once per text; print and return (p50 latency in ms, chars/s)."""
    latencies = []
    for text in texts:
        started = time.perf_counter()
        call(text)
        latencies.append(time.perf_counter() - started)
    p50 = statistics.median(latencies) * 1000
    p95 = statistics.quantiles(latencies, n=20)[-1] * 1000
    rate = sum(map(len, texts)) / sum(latencies)
    print(f"{name:28s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  {rate:10,.0f} chars/s")
    return p50, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=500, help="texts to use (default 500)")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    with open(args.data, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f][: args.limit]
    chars = sum(map(len, texts))

    from guard.pii import get_detector

    guard = get_detector()
    stock = stock_presidio(guard.model_name)

    print(f"{len(texts)} texts, {chars:,} chars, spaCy model {guard.model_name}")
    stock_p50, stock_rate = measure(
        "stock Presidio, per text",
        lambda t: stock.analyze(text=t, language="en", entities=ENTITIES),
        texts,
    )
    guard.cache.clear()
    guard_p50, guard_rate = measure("Guard, per text", lambda t: guard.analyze(t, ENTITIES, 0.5), texts)
    guard.cache.clear()  # the batch is analysed, not answered from the per-text run's cache
    started = time.perf_counter()
    guard.analyze_batch(texts, ENTITIES, 0.5)
    batch_rate = chars / (time.perf_counter() - started)
    print(f"{'Guard, one batch':28s} {'':34s}{batch_rate:10,.0f} chars/s")
    per_text, batched = guard_rate / stock_rate, batch_rate / stock_rate
    print(
        f"ratio vs stock: p50 latency x{stock_p50 / guard_p50:.1f} lower, "
        f"throughput x{per_text:.1f} per text, x{batched:.1f} batched"
    )


if __name__ == "__main__":
    main()
