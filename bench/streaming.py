#!/usr/bin/env python3
"""Streaming overhead: direct to a fake upstream vs through `guard serve`, in one run.

The fake upstream streams TOKENS chunks of 4 characters, one every DELAY seconds. For each
system, alternating, it measures time to first content token and total time per stream;
then it runs CONCURRENT streams at once through Guard (one worker) and reports errors,
throughput and the server's resident memory before and after.

    python bench/streaming.py                      # defaults: 200 tokens, 5 ms apart
    python bench/streaming.py --tokens 400 --delay 0.01 --runs 10 --concurrent 200

Guard runs with the default policy (PII, moderation against the fake upstream, output rules
including the PII rule, audit to SQLite in a temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Processes, healthy, rss_mb, wait_until

BODY = {"model": "gpt-4o-mini", "stream": True, "messages": [
    {"role": "user", "content": "Write a long answer for Maria Gonzalez (maria@example.org)."}]}


async def one_stream(client: httpx2.AsyncClient, url: str) -> tuple[float, float, int]:
    started = time.perf_counter()
    first = None
    chars = 0
    async with client.stream("POST", url, json=BODY, headers={"authorization": "Bearer k"}) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: {") and '"content": "' in line and '"content": ""' not in line:
                if first is None:
                    first = time.perf_counter() - started
                chars += 1
    total = time.perf_counter() - started
    return (first if first is not None else total), total, chars


async def sequential(direct: str, guarded: str, runs: int) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {"direct": [], "guard": []}
    async with httpx2.AsyncClient(timeout=120) as client:
        for _ in range(runs):
            for name, url in (("direct", direct), ("guard", guarded)):
                ttft, total, _ = await one_stream(client, url)
                results[name].append((ttft, total))
    return results


async def concurrent(url: str, n: int) -> tuple[float, int, int]:
    limits = httpx2.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx2.AsyncClient(timeout=300, limits=limits) as client:
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(one_stream(client, url) for _ in range(n)),
                                        return_exceptions=True)
        elapsed = time.perf_counter() - started
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if failures:
        kinds: dict[str, int] = {}
        for f in failures:
            kind = f"{type(f).__name__}: {str(f)[:80]}"
            kinds[kind] = kinds.get(kind, 0) + 1
        print("errors:", kinds, file=sys.stderr)
    return elapsed, n - len(failures), len(failures)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--delay", type=float, default=0.005)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--concurrent", type=int, default=200)
    ap.add_argument("--policy", default="default",
                    help="policy for guard serve (a file or a shipped name)")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp, Processes() as processes:
        upstream_url = processes.fake_upstream(reply="fixed", tokens=a.tokens, delay=a.delay)
        server, port = processes.guard_serve(upstream_url, Path(tmp), policy=a.policy)
        wait_until(healthy(port), server, "guard serve")
        direct = f"{upstream_url}/chat/completions"
        guarded = f"http://127.0.0.1:{port}/v1/chat/completions"
        asyncio.run(sequential(direct, guarded, 2))  # warm up both paths
        seq = asyncio.run(sequential(direct, guarded, a.runs))
        direct_elapsed, direct_ok, direct_errors = asyncio.run(concurrent(direct, a.concurrent))
        before = rss_mb(server.pid)
        elapsed, ok, errors = asyncio.run(concurrent(guarded, a.concurrent))
        after = rss_mb(server.pid)
        elapsed2, ok2, errors2 = asyncio.run(concurrent(guarded, a.concurrent))
        after2 = rss_mb(server.pid)

    def med(name: str, i: int) -> float:
        return statistics.median(r[i] for r in seq[name]) * 1000

    fill_ms = (160 / 4) * a.delay * 1000  # default window: 160 chars = 40 chunks
    print(f"fake upstream: {a.tokens} chunks of 4 chars, {a.delay * 1000:.1f} ms apart; "
          f"{a.runs} alternating runs per system; medians")
    print(f"{'system':8s} {'TTFT ms':>9s} {'total ms':>9s}")
    for name in ("direct", "guard"):
        print(f"{name:8s} {med(name, 0):9.1f} {med(name, 1):9.1f}")
    print(f"added TTFT: {med('guard', 0) - med('direct', 0):+.1f} ms "
          f"(window fill time at this rate: {fill_ms:.1f} ms)")
    print(f"added total: {med('guard', 1) - med('direct', 1):+.1f} ms "
          f"({(med('guard', 1) / med('direct', 1) - 1) * 100:+.1f}%)")
    print(f"{a.concurrent} concurrent streams direct: {direct_elapsed:.1f} s, {direct_ok} ok, "
          f"{direct_errors} errors")
    print(f"{a.concurrent} concurrent streams through guard (1 worker): "
          f"{elapsed:.1f} s, {ok} ok, {errors} errors; again: {elapsed2:.1f} s, {ok2} ok, "
          f"{errors2} errors")
    print(f"guard RSS: {before:.0f} MB before, {after:.0f} MB after the first run, "
          f"{after2:.0f} MB after the second")


if __name__ == "__main__":
    main()
