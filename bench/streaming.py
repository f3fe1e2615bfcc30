#!/usr/bin/env python3
"""Streaming overhead: direct to a fake upstream vs through `guard serve`, in one run.

The fake upstream streams TOKENS chunks of 4 characters. Three measurements, each with the
direct baseline in the same run:

1. sequential, one stream at a time, DELAY apart per chunk, alternating direct and Guard:
   time to first content token (TTFT) and total time per stream (medians);
2. CONCURRENT streams at once, CONCURRENT_DELAY apart per chunk (the pace of a real model,
   about 80 tokens/s by default), direct, then through Guard (one worker) twice: errors,
   wall time, per-stream TTFT and total (p50/p95) and the server's resident memory before
   and after each run (flat = bounded per stream).

Moderation answers from a separate fake process, as OpenAI's does in production.

    python bench/streaming.py                          # defaults
    python bench/streaming.py --tokens 400 --runs 10 --concurrent 200 --output-moderation
    python bench/streaming.py --profile guard.txt     # + py-spy of the first concurrent run

Guard runs the default policy (PII, input moderation, prompt-injection rule, output rules,
audit to SQLite in a temporary folder); ``--output-moderation`` also moderates every
streamed window; ``--policy`` takes another policy file or shipped name.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
import yaml
from harness import cpu_seconds, free_port, rss_mb

BODY = {"model": "gpt-4o-mini", "stream": True, "messages": [
    {"role": "user", "content": "Write a long answer for Maria Gonzalez (maria@example.org)."}]}


class Withheld(Exception):
    """The stream ended with finish_reason content_filter (a block, or a check that failed)."""


async def one_stream(client: httpx2.AsyncClient, url: str, delay: float) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    headers = {"authorization": "Bearer k", "x-bench-delay": str(delay)}
    async with client.stream("POST", url, json=BODY, headers=headers) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if '"finish_reason": "content_filter"' in line:
                raise Withheld("answer withheld (content_filter)")
            if line.startswith("data: {") and '"content": "' in line and '"content": ""' not in line:
                if first is None:
                    first = time.perf_counter() - started
            elif line.startswith("data: {") and '"error"' in line:
                raise RuntimeError("error event in the stream")
    total = time.perf_counter() - started
    if first is None:
        raise RuntimeError("no content received")
    return first, total


async def sequential(direct: str, guarded: str, runs: int,
                     delay: float) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {"direct": [], "guard": []}
    async with httpx2.AsyncClient(timeout=120) as client:
        for _ in range(runs):
            for name, url in (("direct", direct), ("guard", guarded)):
                results[name].append(await one_stream(client, url, delay))
    return results


async def concurrent(url: str, n: int, delay: float) -> dict[str, Any]:
    limits = httpx2.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx2.AsyncClient(timeout=300, limits=limits) as client:
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(one_stream(client, url, delay) for _ in range(n)),
                                        return_exceptions=True)
        elapsed = time.perf_counter() - started
    ok = [o for o in outcomes if isinstance(o, tuple)]
    kinds: dict[str, int] = {}
    for failure in (o for o in outcomes if isinstance(o, BaseException)):
        kind = f"{type(failure).__name__}: {str(failure)[:60]}"
        kinds[kind] = kinds.get(kind, 0) + 1
    return {"elapsed": elapsed, "ok": len(ok), "errors": kinds,
            "ttft": [o[0] for o in ok], "total": [o[1] for o in ok]}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def bench_policy(source: str, moderation_url: str, output_moderation: bool, folder: str) -> str:
    """The policy with moderation pointed at the separate fake moderation process."""
    path = Path(source)
    if not path.exists():
        path = Path(__file__).resolve().parents[1] / "guard" / "policies" / f"{source}.yaml"
    policy = yaml.safe_load(path.read_text())
    moderation = policy.get("moderation") or {}
    for stage in ("input", "output"):
        if isinstance(moderation.get(stage), dict) and moderation[stage].get("provider") == "openai":
            moderation[stage]["base_url"] = moderation_url
    if output_moderation:
        moderation["output"] = {"provider": "openai", "base_url": moderation_url}
    policy["moderation"] = moderation
    out = Path(folder) / "bench-policy.yaml"
    out.write_text(yaml.safe_dump(policy, sort_keys=False))
    return str(out)


def start_fake(port: int, tokens: int, delay: float) -> tuple[subprocess.Popen[str], str]:
    fake = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fake_upstream.py")),
                             "--port", str(port), "--tokens", str(tokens), "--delay", str(delay)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert fake.stdout is not None
    return fake, fake.stdout.readline().strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--delay", type=float, default=0.005, help="seconds between chunks (sequential)")
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--concurrent", type=int, default=200)
    ap.add_argument("--concurrent-delay", type=float, default=0.0125,
                    help="seconds between chunks in the concurrent runs (0.0125 = 80 tokens/s)")
    ap.add_argument("--profile", metavar="FILE", type=Path,
                    help="record a py-spy profile (raw, collapsed stacks) of guard serve during "
                         "the first concurrent run (needs: pip install py-spy)")
    ap.add_argument("--policy", default="default",
                    help="policy for guard serve (a file or a shipped name)")
    ap.add_argument("--audit", default=None,
                    help="keep Guard's audit trail in this SQLite file (to look into errors)")
    ap.add_argument("--output-moderation", action="store_true",
                    help="also moderate every streamed window (moderation.output)")
    a = ap.parse_args()

    fake, upstream_url = start_fake(free_port(), a.tokens, a.delay)
    moderation, moderation_url = start_fake(free_port(), a.tokens, a.delay)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        guard_bin = shutil.which("guard", path=str(Path(sys.executable).parent)) or "guard"
        audit = Path(a.audit).resolve() if a.audit else Path(tmp) / "audit.db"
        env = {**os.environ, "GUARD_AUDIT": f"sqlite:///{audit}"}
        env.pop("OPENAI_API_KEY", None)
        policy = bench_policy(a.policy, moderation_url, a.output_moderation, tmp)
        server = subprocess.Popen([guard_bin, "serve", "--port", str(port), "--upstream",
                                   upstream_url, "--policy", policy], env=env, cwd=tmp,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx2.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx2.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            direct = f"{upstream_url}/chat/completions"
            guarded = f"http://127.0.0.1:{port}/v1/chat/completions"
            asyncio.run(sequential(direct, guarded, 2, a.delay))  # warm up both paths
            seq = asyncio.run(sequential(direct, guarded, a.runs, a.delay))
            conc = {"direct": asyncio.run(concurrent(direct, a.concurrent, a.concurrent_delay))}
            memory = [rss_mb(server.pid)]
            for name in ("guard", "guard again"):
                recorder = None
                if a.profile and name == "guard":
                    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
                    recorder = subprocess.Popen(
                        [spy, "record", "--pid", str(server.pid), "--rate", "200", "--format",
                         "raw", "--output", str(a.profile.resolve())],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(1.0)  # py-spy attaches
                cpu_before = cpu_seconds(server.pid)
                conc[name] = asyncio.run(concurrent(guarded, a.concurrent, a.concurrent_delay))
                conc[name]["cpu"] = cpu_seconds(server.pid) - cpu_before
                memory.append(rss_mb(server.pid))
                if recorder is not None:
                    recorder.send_signal(signal.SIGINT)
                    recorder.wait(timeout=60)
        finally:
            for process in (server, fake, moderation):
                process.terminate()
                process.wait(timeout=30)

    def med(name: str, i: int) -> float:
        return statistics.median(r[i] for r in seq[name]) * 1000

    window_chunks = 160 // 4  # the default window: 160 characters = 40 chunks of 4
    fill_ms = window_chunks * a.delay * 1000
    print(f"policy: {a.policy}{' + output moderation' if a.output_moderation else ''}")
    print(f"sequential: {a.tokens} chunks of 4 chars, {a.delay * 1000:.1f} ms apart; "
          f"{a.runs} alternating runs per system; medians")
    print(f"{'system':8s} {'TTFT ms':>9s} {'total ms':>9s}")
    for name in ("direct", "guard"):
        print(f"{name:8s} {med(name, 0):9.1f} {med(name, 1):9.1f}")
    # The pace the direct streams actually had (a sleep of DELAY takes a little longer).
    pace_ms = (med("direct", 1) - med("direct", 0)) / max(a.tokens - 1, 1)
    print(f"added TTFT: {med('guard', 0) - med('direct', 0):+.1f} ms "
          f"(window fill time at this rate: {fill_ms:.1f} ms nominal, "
          f"{pace_ms * window_chunks:.1f} ms at the measured pace of {pace_ms:.2f} ms per chunk)")
    print(f"added total: {med('guard', 1) - med('direct', 1):+.1f} ms "
          f"({(med('guard', 1) / med('direct', 1) - 1) * 100:+.1f}%)")
    print(f"\n{a.concurrent} concurrent streams, {a.concurrent_delay * 1000:.1f} ms per chunk, "
          "Guard on 1 worker")
    print(f"{'run':12s} {'ok':>4s} {'errors':>6s} {'wall s':>7s} {'TTFT p50':>9s} {'p95':>7s} "
          f"{'total p50':>10s} {'p95':>7s}")
    for name, r in conc.items():
        print(f"{name:12s} {r['ok']:4d} {sum(r['errors'].values()):6d} {r['elapsed']:7.1f} "
              f"{pct(r['ttft'], .5):9.0f} {pct(r['ttft'], .95):7.0f} "
              f"{pct(r['total'], .5):10.0f} {pct(r['total'], .95):7.0f}")
        if "cpu" in r:
            chunks = r["ok"] * a.tokens
            print(f"{'':12s} guard CPU {r['cpu']:.1f} s: {r['cpu'] / max(chunks, 1) * 1e6:.0f} µs "
                  f"per streamed chunk ({chunks / max(r['cpu'], 1e-9):,.0f} chunks/s per core)")
        if r["errors"]:
            print(f"{'':12s} errors: {r['errors']}")
    print(f"guard RSS: {memory[0]:.0f} MB before, {memory[1]:.0f} MB after the first run, "
          f"{memory[2]:.0f} MB after the second")


if __name__ == "__main__":
    main()
