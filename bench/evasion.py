#!/usr/bin/env python3
"""Evasion benchmark: how much PII written to dodge detection Guard still catches.

Runs every case of ``bench/data/evasion.jsonl`` (see ``bench/evasion_corpus.py``) through the
engine exactly as the proxy does — the raw JSON body is parsed, texts extracted, PII found —
and counts a case caught when detections cover at least 80 % of the characters of the
obfuscated value, in every message it appears in. Prints the detection rate per technique
(``plain`` is the baseline: the same values written normally) and per entity.

    python bench/evasion.py [--policy default] [--show-missed]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guard import Guard, MemorySink
from guard.wire.chat import extract_request
from guard.wire.jsonbody import parse_json_object

CORPUS = Path(__file__).parent / "data" / "evasion.jsonl"
COVERAGE = 0.8


@dataclass(frozen=True)
class Outcome:
    technique: str
    entity: str
    caught: bool


def load(path: Path = CORPUS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def check(guard: Guard, case: dict[str, Any]) -> bool:
    body = parse_json_object(case["raw"].encode())
    slots = {slot.param: slot.text for slot in extract_request(body).texts}
    async with guard.call() as call:
        verdict = await call.check_request(body)
    covered: dict[str, set[int]] = defaultdict(set)
    for finding in verdict.findings:
        covered[finding.param].update(range(finding.start, finding.end))
    for leak in case["leaks"]:
        places = [(param, text.find(leak)) for param, text in slots.items() if leak in text]
        if not places:
            return False  # the corpus is wrong, not the detector; counted as missed
        for param, start in places:
            region = [i for i in range(start, start + len(leak)) if not leak[i - start].isspace()]
            hit = sum(1 for i in region if i in covered[param])
            if hit < COVERAGE * len(region):
                return False
    return True


async def evaluate(guard: Guard, cases: list[dict[str, Any]]) -> list[Outcome]:
    return [Outcome(c["technique"], c["entity"], await check(guard, c)) for c in cases]


def rates(outcomes: list[Outcome], key: str) -> dict[str, tuple[int, int]]:
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for outcome in outcomes:
        row = table[getattr(outcome, key)]
        row[0] += outcome.caught
        row[1] += 1
    return {k: (v[0], v[1]) for k, v in table.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default="default")
    parser.add_argument("--show-missed", action="store_true")
    args = parser.parse_args()
    guard = Guard.from_policy(args.policy, audit_sink=MemorySink(), moderation_provider="none")
    cases = load()
    outcomes = asyncio.run(evaluate(guard, cases))
    guard.close()
    print(f"{len(cases)} cases, policy {args.policy!r}; caught = detections cover "
          f">= {COVERAGE:.0%} of the obfuscated value\n")
    print(f"{'technique':<18} {'caught':>8} {'rate':>7}")
    for technique, (caught, total) in rates(outcomes, "technique").items():
        print(f"{technique:<18} {caught:>3} / {total:<3} {caught / total:>6.0%}")
    print(f"\n{'entity':<18} {'caught':>8} {'rate':>7}")
    for entity, (caught, total) in sorted(rates(outcomes, "entity").items()):
        print(f"{entity:<18} {caught:>3} / {total:<3} {caught / total:>6.0%}")
    if args.show_missed:
        print("\nmissed:")
        for case, outcome in zip(cases, outcomes, strict=True):
            if not outcome.caught:
                print(f"  {case['technique']:<16} {case['entity']:<14} {case['leaks']}")


if __name__ == "__main__":
    main()
