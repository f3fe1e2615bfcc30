"""Speed of the offline classifiers: model load time and milliseconds per text.

Prints, for the moderation model (the ``local`` provider), the phrase rules alone (the
previous ``local``) and the prompt-injection scorer: the time to load each in a fresh
process (imports included, measured from inside the process), and the latency of one call
per text — never a batch — as p50 / p95 over short prompts (the moderation and injection
training texts of at most 300 characters) and over a few long texts. Timings are printed,
never asserted.

    python bench/classifiers.py [--limit 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

DATA = Path("/work/shared/data")

LOADERS = {
    "moderation model": "from guard.moderation.local import LocalModeration; LocalModeration()",
    "injection model": "from guard.injection import InjectionScorer; InjectionScorer.load()",
}


def load_seconds(statement: str) -> tuple[float, float]:
    """(import + load, load alone) in seconds, in a fresh interpreter."""
    code = ("import time; t0 = time.perf_counter(); import numpy, guard.moderation.linear; "
            "t1 = time.perf_counter(); " + statement + "; t2 = time.perf_counter(); "
            "print(t2 - t0, t2 - t1)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    total, load = (float(x) for x in out.stdout.split())
    return total, load


def latency(call: Callable[[str], object], texts: list[str]) -> tuple[float, float]:
    for text in texts[:20]:
        call(text)  # warm caches
    times = []
    for text in texts:
        started = time.perf_counter()
        call(text)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2000)
    args = parser.parse_args()

    from guard.injection import shipped_scorer
    from guard.moderation.local import analyse
    from guard.moderation.model import shipped_model

    texts = []
    for name in ("moderation/train.jsonl", "injection/train.jsonl"):
        with (DATA / name).open(encoding="utf-8") as handle:
            texts += [json.loads(line)["text"] for line in handle]
    rng = random.Random(0)
    short = [t for t in texts if len(t) <= 300]
    rng.shuffle(short)
    short = short[: args.limit]
    long = sorted(texts, key=len)[-20:]

    print(f"short texts: {len(short)} (median {statistics.median(map(len, short)):.0f} chars); "
          f"long texts: {len(long)} (median {statistics.median(map(len, long)):.0f} chars)\n")
    for name, statement in LOADERS.items():
        total, load = load_seconds(statement)
        print(f"load {name:<18} {load * 1000:6.0f} ms   (with numpy and guard imports: "
              f"{total * 1000:.0f} ms)")
    print()
    model, injection = shipped_model(), shipped_scorer()
    for name, call in (("moderation model", model.score), ("phrase rules only", analyse),
                       ("injection model", injection.score)):
        p50, p95 = latency(call, short)
        lp50, _ = latency(call, long)
        print(f"{name:<18} short: p50 {p50:.3f} ms, p95 {p95:.3f} ms per text   "
              f"long: p50 {lp50:.1f} ms per text")


if __name__ == "__main__":
    main()
