#!/usr/bin/env python3
"""Load and soak: mixed traffic through `guard serve --workers 2`, audit to SQLite then PostgreSQL.

Loopback only, bounded in count and time. For each store it starts a fake upstream (its own
process; it also answers moderation) and `guard serve`, sends N requests at C concurrent —
30 % streaming, 20 % carrying PII, 5 % flagged by moderation — and reports throughput,
p50/p99 latency, unexpected errors (a flagged request must get its 400, every other one a
200 with PII restored), audit records written vs requests (counted by request id in the
store after the server shut down and flushed), and the server's memory (RSS of all its
processes) and open file descriptors before and after (after a warm-up).

    python bench/load.py                          # 10,000 requests at 64, both stores
    python bench/load.py -n 300 --stores sqlite   # a smoke run
    python bench/load.py --soak 10                # 10 minutes per store, memory sampled

PostgreSQL: ``--postgres-dsn`` or ``GUARD_BENCH_POSTGRES`` or /tmp/guard-test-postgres/dsn.
Exit status 1 when a target is missed (unexpected errors, records != requests, memory
growth over 10 %, descriptors grown by more than 16).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.streaming import free_port

PII_TEXTS = ["I am Maria Gonzalez, mail maria.gonzalez@example.org or call (415) 555-0132.",
             "Card 4111 1111 1111 1111 belongs to John Carter, john.carter@example.com."]
PLAIN = "Summarise our refund policy for a customer whose order arrived late."
FLAGGED = "Explain how to kill the neighbour's dog quietly."
DSN_FILE = Path("/tmp/guard-test-postgres/dsn")


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    unexpected: Counter[str] = field(default_factory=Counter)
    request_ids: set[str] = field(default_factory=set)
    kinds: Counter[str] = field(default_factory=Counter)


def plan(n: int, seed: int = 7) -> list[tuple[str, bool]]:
    """(kind, stream) per request: kind is pii, flagged or plain."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        roll = rng.random()
        kind = "flagged" if roll < 0.05 else "pii" if roll < 0.25 else "plain"
        out.append((kind, kind != "flagged" and rng.random() < 0.30))
    return out


async def one(client: httpx2.AsyncClient, url: str, kind: str, stream: bool, result: Result) -> None:
    text = FLAGGED if kind == "flagged" else random.choice(PII_TEXTS) if kind == "pii" else PLAIN
    body = {"model": "gpt-4o-mini", "stream": stream,
            "messages": [{"role": "user", "content": text}]}
    started = time.perf_counter()
    try:
        if stream:
            async with client.stream("POST", url, json=body) as response:
                content = (await response.aread()).decode()
        else:
            response = await client.post(url, json=body)
            content = response.text
    except httpx2.HTTPError as exc:
        result.unexpected[f"{type(exc).__name__}"] += 1
        return
    result.latencies.append(time.perf_counter() - started)
    result.kinds[f"{kind}{'+stream' if stream else ''}"] += 1
    if request_id := response.headers.get("x-guard-request-id"):
        result.request_ids.add(request_id)
    expected = 400 if kind == "flagged" else 200
    if response.status_code != expected:
        result.unexpected[f"http_{response.status_code}"] += 1
    elif kind == "pii" and "@example" not in content:
        result.unexpected["pii_not_restored"] += 1
    elif stream and "[DONE]" not in content:
        result.unexpected["stream_incomplete"] += 1


async def drive(url: str, work: list[tuple[str, bool]], concurrency: int,
                until: float | None = None) -> tuple[Result, float]:
    result = Result()
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    queue: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)

    async def worker(client: httpx2.AsyncClient) -> None:
        while until is None or time.monotonic() < until:
            try:
                kind, stream = queue.get_nowait()
            except asyncio.QueueEmpty:
                if until is None:
                    return
                kind, stream = plan(1, seed=random.randrange(1 << 30))[0]
            await one(client, url, kind, stream, result)

    async with httpx2.AsyncClient(timeout=120, limits=limits,
                                  headers={"authorization": "Bearer sk-bench"}) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return result, time.perf_counter() - started


def processes(root: int) -> list[int]:
    """``root`` and all its descendants (uvicorn's supervisor and its workers)."""
    found, frontier = [root], [root]
    while frontier:
        pid = frontier.pop()
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            try:
                children = [int(c) for c in task.read_text().split()]
            except OSError:
                continue
            found += children
            frontier += children
    return found


def footprint(root: int) -> tuple[float, int]:
    """(RSS in MiB, open file descriptors) summed over the server's processes."""
    rss, fds = 0.0, 0
    for pid in processes(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) / 1024
            fds += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
    return rss, fds


def count_records(store: str, audit_url: str, ids: set[str]) -> int:
    if not ids:
        return 0
    if store == "sqlite":
        with sqlite3.connect(audit_url.removeprefix("sqlite:///")) as conn:
            conn.execute("CREATE TEMP TABLE ids (rid TEXT PRIMARY KEY)")
            conn.executemany("INSERT INTO ids VALUES (?)", [(i,) for i in ids])
            row = conn.execute("SELECT count(*) FROM guard_requests JOIN ids ON request_id = rid")
            return int(row.fetchone()[0])
    import psycopg

    with psycopg.connect(audit_url) as conn:
        row = conn.execute("SELECT count(*) FROM guard_requests WHERE request_id = ANY(%s)",
                           (list(ids),)).fetchone()
        return int(row[0]) if row else 0


def wait_healthy(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise SystemExit("guard serve did not come up:\n" + "\n".join(tail))
        time.sleep(0.3)


def run_store(store: str, audit_url: str, args: argparse.Namespace, tmp: str) -> bool:
    fake = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fake_upstream.py")),
                             "--port", str(free_port()), "--tokens", str(args.tokens),
                             "--delay", str(args.delay), "--echo"], stdout=subprocess.PIPE,
                            text=True)
    assert fake.stdout is not None
    upstream_url = fake.stdout.readline().strip()
    port = free_port()
    guard_bin = shutil.which("guard", path=str(Path(sys.executable).parent)) or "guard"
    env = {**os.environ, "GUARD_AUDIT": audit_url}
    env.pop("OPENAI_API_KEY", None)
    log = Path(tmp) / f"serve-{store}.log"
    with log.open("wb") as sink:
        server = subprocess.Popen([guard_bin, "serve", "--port", str(port), "--workers",
                                   str(args.workers), "--upstream", upstream_url], env=env,
                                  cwd=tmp, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        wait_healthy(port, server, log)
        warm, _ = asyncio.run(drive(url, plan(max(args.concurrency * 2, 100), seed=1),
                                    args.concurrency))
        rss_before, fds_before = footprint(server.pid)
        samples: list[float] = []
        if args.soak:
            until = time.monotonic() + args.soak * 60
            result, elapsed = Result(), 0.0
            while time.monotonic() < until:
                chunk, took = asyncio.run(drive(url, [], args.concurrency,
                                                until=min(until, time.monotonic() + 30)))
                result.latencies += chunk.latencies
                result.unexpected.update(chunk.unexpected)
                result.request_ids |= chunk.request_ids
                result.kinds.update(chunk.kinds)
                elapsed += took
                samples.append(footprint(server.pid)[0])
                print(f"  {elapsed / 60:5.1f} min  {len(result.latencies):>7} requests  "
                      f"rss {samples[-1]:.0f} MiB", flush=True)
        else:
            result, elapsed = asyncio.run(drive(url, plan(args.requests), args.concurrency))
        rss_after, fds_after = footprint(server.pid)
        # Baseline in the same run: the same plan straight to the fake upstream, no Guard.
        direct, direct_elapsed = asyncio.run(drive(f"{upstream_url}/chat/completions",
                                                   plan(min(args.requests, 2000)),
                                                   args.concurrency))
    finally:
        server.send_signal(signal.SIGINT)  # a clean shutdown flushes the audit writers
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        fake.terminate()
        fake.wait(timeout=30)
    sent = len(result.latencies) + sum(v for k, v in result.unexpected.items()
                                       if not k.startswith(("http_", "pii_", "stream_")))
    written = count_records(store, audit_url, result.request_ids | warm.request_ids)
    expected_records = len(result.request_ids | warm.request_ids)
    latencies = sorted(result.latencies)
    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    unexpected = sum(result.unexpected.values())
    growth = (rss_after - rss_before) / rss_before if rss_before else float("nan")
    print(f"\n[{store}] {sent} requests at {args.concurrency} concurrent, "
          f"{args.workers} workers: {sent / elapsed:.1f} req/s")
    print(f"  mix: {dict(sorted(result.kinds.items()))}")
    print(f"  latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    base = sorted(direct.latencies)
    if base:
        base_p50 = statistics.median(base) * 1000
        base_p99 = base[int(len(base) * 0.99) - 1] * 1000
        print(f"  baseline, same plan direct to the fake upstream ({len(base)} requests): "
              f"{len(base) / direct_elapsed:.1f} req/s, p50 {base_p50:.1f} ms, "
              f"p99 {base_p99:.1f} ms; Guard adds {p50 - base_p50:+.1f} ms at p50")
    print(f"  unexpected errors: {unexpected} {dict(result.unexpected) if unexpected else ''}")
    print(f"  audit records: {written} written for {expected_records} answered requests "
          f"(incl. {len(warm.request_ids)} warm-up)")
    print(f"  memory: {rss_before:.0f} -> {rss_after:.0f} MiB ({growth:+.1%}); "
          f"fds: {fds_before} -> {fds_after}")
    if samples:
        print(f"  soak rss samples (MiB): {', '.join(f'{s:.0f}' for s in samples)}")
    ok = (unexpected == 0 and written == expected_records and growth <= 0.10
          and fds_after - fds_before <= 16)
    print(f"  targets {'met' if ok else 'MISSED'}")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--requests", type=int, default=10_000)
    ap.add_argument("-c", "--concurrency", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--postgres-dsn", default=os.environ.get("GUARD_BENCH_POSTGRES"))
    ap.add_argument("--soak", type=float, default=0, metavar="MINUTES",
                    help="run for this many minutes per store instead of --requests")
    ap.add_argument("--tokens", type=int, default=40, help="reply length in 4-char chunks")
    ap.add_argument("--delay", type=float, default=0.001, help="seconds between stream chunks")
    args = ap.parse_args()
    if not 0 < args.requests <= 100_000 or not 0 < args.concurrency <= 512 or args.soak > 120:
        raise SystemExit("bounded: --requests 1..100000, --concurrency 1..512, --soak <= 120")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for store in [s.strip() for s in args.stores.split(",") if s.strip()]:
            if store == "sqlite":
                audit_url = f"sqlite:///{tmp}/audit.db"
            elif store == "postgresql":
                dsn = args.postgres_dsn or (DSN_FILE.read_text().strip() if DSN_FILE.exists()
                                            else None)
                if not dsn:
                    print("[postgresql] skipped: no DSN (--postgres-dsn)")
                    continue
                audit_url = dsn
            else:
                raise SystemExit(f"unknown store {store!r}: sqlite, postgresql")
            results.append(run_store(store, audit_url, args, tmp))
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
