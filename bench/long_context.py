"""Long context: a ~100 KB prompt scanned by stock Presidio and by Guard, same run.

The prompt is a long support thread (paragraphs with names, e-mails and phone numbers, see
``conversation.py``). Stock Presidio analyses it whole, on one core. Guard analyses it
alone (one process) and with one worker process (``GUARD_PII_PROCESSES=1``: the text is cut
into overlapping pieces shared by this process and the worker, so both cores work). Model
loading and worker start are not timed; the span cache is cleared before each run. Target:
Guard at most 1/10 of stock's time. Timings are printed, never asserted.

    python bench/long_context.py [--kb 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from conversation import user_turn
from stock import ENTITIES, stock_presidio


def long_prompt(kb: int, seed: int = 11) -> str:
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    turn = 0
    while size < kb * 1000:
        turn += 1
        paragraph = user_turn(rng, turn) + ("\n\n" if turn % 3 == 0 else " ")
        parts.append(paragraph)
        size += len(paragraph)
    return "".join(parts)


def timed(call: Callable[[], object], repeats: int, before: Callable[[], None] = lambda: None) -> float:
    samples = []
    for _ in range(repeats):
        before()
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    text = long_prompt(args.kb)

    from guard.pii import get_detector

    guard = get_detector()
    stock = stock_presidio(guard.model_name)
    stock_s = timed(lambda: stock.analyze(text=text, language="en", entities=ENTITIES), args.repeats)
    alone_s = timed(lambda: guard.analyze(text, ENTITIES, 0.5), args.repeats, guard.cache.clear)
    guard.use_processes(1)
    try:
        pooled_s = timed(lambda: guard.analyze(text, ENTITIES, 0.5), args.repeats, guard.cache.clear)
        pooled_spans = guard.analyze(text, ENTITIES, 0.5)
    finally:
        guard.use_processes(0)
    guard.cache.clear()
    same = pooled_spans == guard.analyze(text, ENTITIES, 0.5)

    print(f"{len(text):,}-character prompt, spaCy model {guard.model_name}, median of {args.repeats}\n")
    print(f"{'':34s}{'seconds':>10s}{'share of stock':>16s}")
    for name, seconds in (("stock Presidio", stock_s), ("Guard, one process", alone_s),
                          ("Guard, + 1 worker process", pooled_s)):
        print(f"{name:34s}{seconds:10.2f}{seconds / stock_s:15.1%}")
    print(f"\nGuard with a worker: 1/{stock_s / pooled_s:.0f} of stock's time (target: 1/10 or less); "
          f"same spans as one process: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
