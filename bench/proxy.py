#!/usr/bin/env python3
"""Proxy overhead: what `guard serve` adds over a bare pass-through proxy, in one run.

Starts, each in its own process on 127.0.0.1:

- the fake upstream (``bench/fake_upstream.py --reply echo``): answers chat completions with
  the user message it received (so Guard restores placeholders) and ``/v1/moderations``;
- a bare proxy (``bench/bare_proxy.py``): Guard's own server stack — uvicorn with the options
  of `guard serve`, Guard's ``Router`` and ``Forwarder`` — with no checks at all;
- `guard serve` with the default policy: PII, prompt-injection rule, moderation against the
  fake upstream's ``/v1/moderations`` (provider ``openai``, never the offline one), output
  rules, audit to SQLite in a temporary folder.

Then it sends chat completions with a ~1 KB user message holding a name, an e-mail address
and a phone number (different in every request) from an async httpx2 client with a
connection pool, alternating the systems:

1. concurrency 1: REQUESTS rounds, one request per system per round (order rotated each
   round); p50/p99 latency of direct, bare and guard, and guard's added p50/p99 over bare;
2. concurrency 32: ROUNDS rounds of SECONDS per system (order rotated); throughput of
   direct (the client's and upstream's own limit), bare and guard, and guard/bare.

Every answer is checked: status 200, the e-mail address back in the answer (restored, for
Guard) and, for Guard with the default policy, ``x-guard-decision: redact``; anything else
counts as an error. Last, Guard's audit trail is read back: one record per request,
moderation by ``openai``, and Guard's own stage timings (PII, input rules, moderation,
output rules) per request.

``--stages`` adds, at concurrency 1 only, one more `guard serve` per policy in
``bench/stages/`` — plumbing only, + moderation, + the injection rule, + output rules (the
default policy is the last plus PII) — so the table shows what each stage adds.

    python bench/proxy.py                                    # ~1.5 minutes on 2 cores
    python bench/proxy.py --stages                           # + where the time goes
    python bench/proxy.py --requests 100 --seconds 2 --rounds 1    # a quick smoke run
    python bench/proxy.py --profile guard.txt      # + a py-spy profile of guard serve
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import Processes, cpu_seconds, healthy, rss_mb, stop, wait_until
from workload import Workload

from guard.audit import read_records

console = Console()
SYSTEMS = ("direct", "bare", "guard")
STAGES = sorted((Path(__file__).resolve().parent / "stages").glob("*.yaml"))
PHASES = ("warm-up", "concurrency 1", "concurrency N")
"""Each phase sends its own (fake) API key, so its audit records have their own principal."""
TARGET_ADDED_P50_MS = 5.0
TARGET_ADDED_P99_MS = 15.0
TARGET_RATIO = 0.5


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    blocked: int = 0
    """Requests the policy refused (400 ``guard.policy``: the prompt-injection rule)."""
    elapsed: float = 0.0
    cpu_ms: float = float("nan")
    """The server's CPU time per request (all its threads), where known."""

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed if self.elapsed else float("nan")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1] * 1000


def headers(phase: str) -> dict[str, str]:
    key = f"sk-bench-{PHASES.index(phase)}"
    return {"authorization": f"Bearer {key}", "content-type": "application/json"}


async def send(client: httpx2.AsyncClient, system: str, url: str, workload: Workload,
               tally: Tally, phase: str) -> None:
    request = workload.next()
    started = time.perf_counter()
    try:
        response = await client.post(url, content=request.body, headers=headers(phase))
    except httpx2.HTTPError as exc:
        tally.errors[type(exc).__name__] += 1
        return
    elapsed = time.perf_counter() - started
    if response.status_code == 400 and b'"guard.policy"' in response.content:
        tally.blocked += 1  # a false positive of the default policy's injection rule
    elif response.status_code != 200:
        tally.errors[f"http_{response.status_code}"] += 1
    elif request.email.encode() not in response.content:
        tally.errors["answer without the e-mail address"] += 1
    elif system != "direct" and system != "bare" and (
            decision := response.headers.get("x-guard-decision")) != expected_decision(system):
        tally.errors[f"decision {decision}"] += 1
    else:
        tally.latencies.append(elapsed)


def expected_decision(system: str) -> str:
    """The default policy pseudonymises the three values; the stage policies find no PII."""
    return "redact" if system == "guard" else "allow"


def rotated(i: int, systems: tuple[str, ...]) -> tuple[str, ...]:
    k = i % len(systems)
    return systems[k:] + systems[:k]


async def sequential(urls: dict[str, str], rounds: int, warmup: int,
                     pids: dict[str, int]) -> dict[str, Tally]:
    tallies = {s: Tally() for s in urls}
    workload = Workload(seed=1)
    async with httpx2.AsyncClient(timeout=30, trust_env=False) as client:
        for i in range(warmup):
            for system in rotated(i, tuple(urls)):
                await send(client, system, urls[system], workload, Tally(), "warm-up")
        cpu = {system: cpu_seconds(pid) for system, pid in pids.items()}
        for i in range(rounds):
            for system in rotated(i, tuple(urls)):
                await send(client, system, urls[system], workload, tallies[system],
                           "concurrency 1")
        for system, pid in pids.items():
            tallies[system].cpu_ms = (cpu_seconds(pid) - cpu[system]) * 1000 / rounds
    return tallies


async def saturate(client: httpx2.AsyncClient, system: str, url: str, concurrency: int,
                   seconds: float, workload: Workload, tally: Tally, phase: str) -> None:
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            await send(client, system, url, workload, tally, phase)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    tally.elapsed += time.perf_counter() - started


async def concurrent(urls: dict[str, str], concurrency: int, seconds: float,
                     rounds: int) -> dict[str, Tally]:
    tallies = {s: Tally() for s in urls}
    workload = Workload(seed=2)
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(timeout=60, limits=limits, trust_env=False) as client:
        for system in urls:  # open the pool's connections to every system first
            await saturate(client, system, urls[system], concurrency, 0.3, workload, Tally(),
                           "warm-up")
        for i in range(rounds):
            for system in rotated(i, tuple(urls)):
                await saturate(client, system, urls[system], concurrency, seconds, workload,
                               tallies[system], "concurrency N")
    return tallies


def by_phase(records: list[dict[str, Any]], warmup: bool) -> dict[str, list[dict[str, Any]]]:
    """Audit records per phase: the principals, in order of first appearance, are the phases
    (each phase sends its own key, and Guard records a keyed hash of it)."""
    principals: list[str] = []
    for record in records:
        if str(record.get("principal")) not in principals:
            principals.append(str(record.get("principal")))
    keyed = dict(zip(principals, PHASES if warmup else PHASES[1:], strict=False))
    grouped: dict[str, list[dict[str, Any]]] = {p: [] for p in PHASES}
    for record in records:
        grouped[keyed.get(str(record.get("principal")), "warm-up")].append(record)
    return grouped


def stage_medians(records: list[dict[str, Any]]) -> dict[str, float]:
    stages: dict[str, list[float]] = {}
    for record in records:
        for stage, ms in (record.get("latency_ms") or {}).items():
            stages.setdefault(stage, []).append(float(ms))
    return {stage: statistics.median(values) for stage, values in stages.items()}


def errors_text(tally: Tally) -> str:
    if not tally.errors:
        return "0"
    return f"{sum(tally.errors.values())} (" + ", ".join(
        f"{kind}: {n}" for kind, n in tally.errors.most_common()) + ")"


def verdict(ok: bool) -> str:
    return "[green]met[/]" if ok else "[red]not met[/]"


def report(args: argparse.Namespace, seq: dict[str, Tally], conc: dict[str, Tally],
           records: list[dict[str, Any]], rss: tuple[float, float]) -> None:
    table = Table(title=f"Concurrency 1: {args.requests} alternating rounds (latency, ms)",
                  title_justify="left")
    for column in ("system", "requests", "p50", "p99", "p50 over bare", "server CPU/request",
                   "blocked", "errors"):
        table.add_column(column, justify="right" if column != "system" else "left")
    bare50 = percentile(seq["bare"].latencies, 50)
    for system, t in seq.items():
        over = percentile(t.latencies, 50) - bare50 if system not in ("direct", "bare") else None
        table.add_row(system, str(t.ok), f"{percentile(t.latencies, 50):.2f}",
                      f"{percentile(t.latencies, 99):.2f}", f"{over:+.2f}" if over is not None else "",
                      f"{t.cpu_ms:.2f}" if t.cpu_ms == t.cpu_ms else "", str(t.blocked),
                      errors_text(t))
    console.print(table)
    bare, guard = seq["bare"].latencies, seq["guard"].latencies
    added50 = percentile(guard, 50) - percentile(bare, 50)
    added99 = percentile(guard, 99) - percentile(bare, 99)
    console.print(f"guard adds over bare: p50 [bold]{added50:+.2f} ms[/] (target ≤ "
                  f"{TARGET_ADDED_P50_MS:g}: {verdict(added50 <= TARGET_ADDED_P50_MS)}), p99 "
                  f"[bold]{added99:+.2f} ms[/] (target ≤ {TARGET_ADDED_P99_MS:g}: "
                  f"{verdict(added99 <= TARGET_ADDED_P99_MS)})")
    direct50 = percentile(seq["direct"].latencies, 50)
    console.print(f"bare adds over direct: p50 {percentile(bare, 50) - direct50:+.2f} ms")

    table = Table(title=f"Concurrency {args.concurrency}: {args.rounds} round(s) of "
                        f"{args.seconds:g} s per system", title_justify="left")
    for column in ("system", "requests", "req/s", "p50 ms", "p99 ms", "blocked", "errors"):
        table.add_column(column, justify="right" if column != "system" else "left")
    for system in SYSTEMS:
        t = conc[system]
        table.add_row(system, str(t.ok), f"{t.throughput:.1f}", f"{percentile(t.latencies, 50):.1f}",
                      f"{percentile(t.latencies, 99):.1f}", str(t.blocked), errors_text(t))
    console.print(table)
    ratio = conc["guard"].throughput / conc["bare"].throughput
    clean = not conc["guard"].errors and not conc["bare"].errors
    console.print(f"guard / bare throughput: [bold]{ratio:.2f}[/] (target ≥ {TARGET_RATIO:g}: "
                  f"{verdict(ratio >= TARGET_RATIO)}); errors: "
                  f"{'none' if clean else '[red]some[/]'}")

    sent = {p: tallies["guard"].ok + tallies["guard"].blocked + sum(tallies["guard"].errors.values())
            for p, tallies in (("concurrency 1", seq), ("concurrency N", conc))}
    phases = by_phase(records, warmup=args.warmup > 0)
    moderation = Counter(
        f"{m.get('provider')} {m.get('outcome')}" for r in records
        if (m := (r.get("moderation") or {}).get("input")))
    decisions = Counter(r.get("decision") for r in records)
    console.print(f"audit trail: {len(records)} records; measured guard requests "
                  f"{sent['concurrency 1']} + {sent['concurrency N']}, records "
                  f"{len(phases['concurrency 1'])} + {len(phases['concurrency N'])}; decisions "
                  f"{dict(decisions)}; input moderation {dict(moderation)}")
    table = Table(title="Guard's own stage timings (audit latency_ms, median per request)",
                  title_justify="left")
    table.add_column("stage")
    for phase in ("concurrency 1", "concurrency N"):
        table.add_column(phase.replace("N", str(args.concurrency)), justify="right")
    columns = [stage_medians(phases[p]) for p in ("concurrency 1", "concurrency N")]
    for stage in ("pii", "input_rules", "moderation", "upstream", "rules", "total"):
        table.add_row(stage, *(f"{c[stage]:.2f}" if stage in c else "-" for c in columns))
    console.print(table)
    if "pii" in columns[0] and added50 > 0:
        console.print(f"PII detection is {columns[0]['pii'] / added50:.0%} of guard's added p50 "
                      "at concurrency 1.")
    blocked = seq["guard"].blocked + conc["guard"].blocked
    if blocked:
        console.print(f"[yellow]{blocked} benign request(s) were blocked by the default policy's "
                      "prompt-injection rule (false positives); they count in neither latency "
                      "nor throughput.[/]")
    console.print(f"guard RSS: {rss[0]:.0f} MB after start, {rss[1]:.0f} MB at the end")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300,
                    help="concurrency-1 rounds; each sends one request to every system")
    ap.add_argument("--warmup", type=int, default=20, help="unmeasured rounds first")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=5.0,
                    help="length of each system's turn at full concurrency")
    ap.add_argument("--rounds", type=int, default=3, help="turns per system at full concurrency")
    ap.add_argument("--policy", default="default", help="policy for guard serve (file or name)")
    ap.add_argument("--stages", action="store_true",
                    help="also run bench/stages/*.yaml at concurrency 1 (what each stage adds)")
    ap.add_argument("--profile", metavar="FILE", type=Path,
                    help="record guard serve with py-spy (pip install py-spy) during both "
                         "phases, as collapsed stacks per thread (flamegraph.pl, speedscope)")
    args = ap.parse_args()
    spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if args.profile and spy is None:
        ap.error("--profile needs py-spy: pip install py-spy")
    if min(args.requests, args.concurrency, args.rounds) < 1 or args.seconds <= 0:
        ap.error("--requests, --concurrency, --rounds and --seconds must be positive")

    with tempfile.TemporaryDirectory() as tmp, Processes() as processes:
        upstream = processes.fake_upstream(reply="echo")
        bare, bare_port = processes.bare_proxy(upstream)
        guards = {"guard": args.policy, **{f"stage {p.stem}": str(p)
                                           for p in (STAGES if args.stages else ())}}
        served = {}
        for name, policy in guards.items():
            workdir = Path(tmp) / name.replace(" ", "-")
            workdir.mkdir()
            served[name] = (*processes.guard_serve(upstream, workdir, policy=policy), workdir)
        wait_until(healthy(bare_port), bare, "the bare proxy")
        with console.status("Waiting for guard serve to load its models…"):
            for name, (process, port, _) in served.items():
                wait_until(healthy(port), process, f"guard serve ({name})")
        urls = {"direct": f"{upstream}/chat/completions",
                "bare": f"http://127.0.0.1:{bare_port}/v1/chat/completions",
                **{name: f"http://127.0.0.1:{port}/v1/chat/completions"
                   for name, (_, port, _) in served.items()}}
        guard, _, guard_dir = served["guard"]
        rss_start = rss_mb(guard.pid)
        recorder = None
        if args.profile:
            recorder = processes.popen([str(spy), "record", "--pid", str(guard.pid), "--rate",
                                        "250", "--threads", "--format", "raw", "--output",
                                        str(args.profile.resolve())],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # py-spy attaches
        with console.status(f"Concurrency 1: {args.requests} rounds…"):
            pids = {"bare": bare.pid, **{name: p.pid for name, (p, _, _) in served.items()}}
            seq = asyncio.run(sequential(urls, args.requests, args.warmup, pids))
        with console.status(f"Concurrency {args.concurrency}: {args.rounds} x "
                            f"{args.seconds:g} s per system…"):
            conc = asyncio.run(concurrent({s: urls[s] for s in SYSTEMS}, args.concurrency,
                                          args.seconds, args.rounds))
        rss_end = rss_mb(guard.pid)
        if recorder is not None:
            recorder.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            recorder.wait(timeout=60)
            console.print(f"py-spy profile of guard serve: {args.profile}")
        stop(guard)  # it writes what is left of its audit trail on shutdown
        records = read_records(f"sqlite:///{guard_dir}/audit.db")
    report(args, seq, conc, records, (rss_start, rss_end))


if __name__ == "__main__":
    main()
