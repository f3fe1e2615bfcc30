#!/usr/bin/env python3
"""Start-up and memory of `guard serve`: time to ready, resident memory per worker.

Starts the fake upstream (it answers chat completions and ``/v1/moderations``), then launches
`guard serve` with the default policy LAUNCHES times, one after the other. For each launch:

- **listening**: from launch to the first ``GET /healthz`` answered;
- **ready**: from launch to the first ``GET /readyz`` answered 200 — or, where Guard has no
  ``/readyz``, to the first chat completion answered 200 (the model loaded and warmed, the
  first request served through PII, moderation and output rules);
- **RSS** of every worker process: once ready, and after REQUESTS more chat requests
  (4 at a time, a ~1 KB message with a name, an e-mail address and a phone number each).

Then, in fresh interpreters, where start-up goes: the interpreter alone, importing the
proxy, and building the default policy's Guard (spaCy and Presidio loaded, warmed).

    python bench/startup.py                       # 3 launches, 1 worker, 200 requests
    python bench/startup.py --launches 5 --workers 2 --requests 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import Processes, clean_env, rss_mb, stop, worker_pids
from workload import Workload

console = Console()
TARGET_READY_S = 5.0
TARGET_RSS_MB = 400.0
HEADERS = {"authorization": "Bearer sk-bench-not-a-real-key"}

# Run in a fresh interpreter; prints seconds since it started for each step, as JSON.
_STEPS = """
import json, os, sys, time
started = time.perf_counter()
out = {}
import guard.proxy
out["import guard.proxy"] = time.perf_counter() - started
from guard.engine import Guard
from guard.audit import MemorySink
guard = Guard.from_policy("default", audit_sink=MemorySink(), upstream_url=sys.argv[1])
out["Guard.from_policy('default')"] = time.perf_counter() - started
guard.close()
print(json.dumps(out))
"""


def launch_once(processes: Processes, upstream: str, workdir: Path, workers: int,
                requests: int) -> dict[str, object]:
    workload = Workload(seed=3)
    started = time.perf_counter()
    process, port = processes.guard_serve(upstream, workdir, workers=workers)
    base = f"http://127.0.0.1:{port}"
    listening = ready = None
    signal = "chat"
    with httpx2.Client(timeout=30, trust_env=False) as client:
        while ready is None:
            if process.poll() is not None:
                raise RuntimeError(f"guard serve exited with status {process.returncode}")
            if time.perf_counter() - started > 180:
                raise RuntimeError("guard serve was not ready within 180 s")
            try:
                if listening is None and client.get(f"{base}/healthz").status_code == 200:
                    listening = time.perf_counter() - started
                if listening is not None:
                    probe = client.get(f"{base}/readyz")
                    if probe.status_code == 200:
                        signal = "/readyz"
                        ready = time.perf_counter() - started
                        break
                    if probe.status_code == 404:
                        answer = client.post(f"{base}/v1/chat/completions", headers=HEADERS,
                                             content=workload.next().body)
                        if answer.status_code == 200:
                            ready = time.perf_counter() - started
                            break
            except httpx2.TransportError:
                pass
            time.sleep(0.02)
        first = client.post(f"{base}/v1/chat/completions", headers=HEADERS,
                            content=workload.next().body)
        first_answer = time.perf_counter() - started
        if first.status_code != 200:
            raise RuntimeError(f"guard serve answered {first.status_code}: {first.text[:200]}")
    time.sleep(0.5)  # let every worker finish its own start-up before measuring memory
    pids = worker_pids(process.pid)
    rss_ready = [rss_mb(pid) for pid in pids]
    errors = asyncio.run(drive(f"{base}/v1/chat/completions", requests, workload))
    rss_after = [rss_mb(pid) for pid in pids]
    stop(process)
    return {"listening": listening, "ready": ready, "signal": signal, "first": first_answer,
            "rss_ready": rss_ready, "rss_after": rss_after, "errors": errors}


async def drive(url: str, requests: int, workload: Workload) -> int:
    errors = 0
    queue = [workload.next().body for _ in range(requests)]
    async with httpx2.AsyncClient(timeout=60, trust_env=False) as client:
        async def worker() -> None:
            nonlocal errors
            while queue:
                body = queue.pop()
                try:
                    response = await client.post(url, headers=HEADERS, content=body)
                    # The default policy's injection rule may refuse a benign prompt (400).
                    errors += response.status_code not in (200, 400)
                except httpx2.HTTPError:
                    errors += 1
        await asyncio.gather(*(worker() for _ in range(4)))
    return errors


def breakdown(upstream: str) -> dict[str, float]:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=clean_env())
    steps = {"python -c pass": time.perf_counter() - started}
    result = subprocess.run([sys.executable, "-c", _STEPS, upstream], check=True,
                            capture_output=True, text=True, env=clean_env())
    steps.update(json.loads(result.stdout.strip().splitlines()[-1]))
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--launches", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--requests", type=int, default=200,
                    help="chat requests after start-up, before memory is measured again")
    args = ap.parse_args()
    if min(args.launches, args.workers) < 1 or args.requests < 0:
        ap.error("--launches and --workers must be positive, --requests not negative")

    results = []
    with tempfile.TemporaryDirectory() as tmp, Processes() as processes:
        upstream = processes.fake_upstream(reply="echo")
        for n in range(args.launches):
            workdir = Path(tmp) / f"launch-{n}"
            workdir.mkdir()
            with console.status(f"Launch {n + 1} of {args.launches}…"):
                results.append(launch_once(processes, upstream, workdir, args.workers,
                                           args.requests))
        with console.status("Timing the start-up steps in fresh interpreters…"):
            steps = breakdown(upstream)

    table = Table(title=f"guard serve --workers {args.workers}, default policy: "
                        f"{args.launches} launch(es)", title_justify="left")
    for column in ("launch", "listening s", "ready s", "ready signal", "first answer s",
                   "RSS ready MB", f"RSS after {args.requests} req MB", "errors"):
        table.add_column(column, justify="left" if column in ("launch", "ready signal") else "right")
    for n, r in enumerate(results, 1):
        table.add_row(str(n), f"{r['listening']:.2f}", f"{r['ready']:.2f}", str(r["signal"]),
                      f"{r['first']:.2f}", " / ".join(f"{m:.0f}" for m in r["rss_ready"]),  # type: ignore[attr-defined]
                      " / ".join(f"{m:.0f}" for m in r["rss_after"]), str(r["errors"]))  # type: ignore[attr-defined]
    console.print(table)
    ready = statistics.median(float(r["ready"]) for r in results)  # type: ignore[arg-type]
    peak = max(max(r["rss_after"]) for r in results)  # type: ignore[call-overload]
    met = "[green]met[/]", "[red]not met[/]"
    console.print(f"ready (median): [bold]{ready:.2f} s[/] (target ≤ {TARGET_READY_S:g} s: "
                  f"{met[0] if ready <= TARGET_READY_S else met[1]}); largest worker RSS: "
                  f"[bold]{peak:.0f} MB[/] (target ≤ {TARGET_RSS_MB:g} MB: "
                  f"{met[0] if peak <= TARGET_RSS_MB else met[1]})")
    table = Table(title="Where start-up goes (fresh interpreter, seconds since it started)",
                  title_justify="left")
    table.add_column("step")
    table.add_column("s", justify="right")
    for step, seconds in steps.items():
        table.add_row(step, f"{seconds:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
