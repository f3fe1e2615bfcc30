"""What the benchmarks share: free ports, the fake upstream, `guard serve` and the bare proxy
in their own processes on 127.0.0.1, readiness polling and resident memory from /proc.

Every process started here is stopped by :class:`Processes` (a context manager), also when
the benchmark fails half-way.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx2

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of one process (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (uvicorn's worker processes under ``--workers N``)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        children += [int(c) for c in text]
    return children


def worker_pids(pid: int) -> list[int]:
    """The processes that serve requests: the children with ``--workers N > 1``, else ``pid``."""
    return child_pids(pid) or [pid]


def guard_command() -> str:
    return shutil.which("guard", path=str(Path(sys.executable).parent)) or "guard"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without keys or Guard settings from the caller's shell."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "GUARD_UPSTREAM_URL", "GUARD_AUDIT", "GUARD_POLICY",
                        "GUARD_CLIENT_KEYS")}
    env.update(extra)
    return env


class Processes:
    """Starts benchmark servers and stops every one of them on exit."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for process in reversed(self.started):
            stop(process)

    def popen(self, args: Sequence[str], **kwargs: object) -> subprocess.Popen[str]:
        process: subprocess.Popen[str] = subprocess.Popen(list(args), text=True, **kwargs)  # type: ignore[call-overload]
        self.started.append(process)
        return process

    def fake_upstream(self, *, reply: str = "echo", tokens: int = 200,
                      delay: float = 0.0) -> str:
        """Start ``bench/fake_upstream.py``; returns its base URL (``http://.../v1``)."""
        process = self.popen([sys.executable, str(BENCH / "fake_upstream.py"), "--port",
                              str(free_port()), "--reply", reply, "--tokens", str(tokens),
                              "--delay", str(delay)], stdout=subprocess.PIPE)
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url:
            raise RuntimeError("the fake upstream did not start")
        return url

    def guard_serve(self, upstream_url: str, workdir: Path, *, policy: str = "default",
                    workers: int = 1, port: int | None = None,
                    env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int]:
        """Start ``guard serve`` against ``upstream_url``, auditing to SQLite in ``workdir``."""
        port = port or free_port()
        policy_ref = str(Path(policy).resolve()) if Path(policy).exists() else policy
        environment = clean_env(GUARD_AUDIT=f"sqlite:///{workdir}/audit.db", **(env or {}))
        process = self.popen([guard_command(), "serve", "--port", str(port), "--upstream",
                              upstream_url, "--policy", policy_ref, "--workers", str(workers)],
                             env=environment, cwd=workdir, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        return process, port

    def bare_proxy(self, upstream_url: str) -> tuple[subprocess.Popen[str], int]:
        """Start ``bench/bare_proxy.py``: Guard's server stack with no checks."""
        port = free_port()
        process = self.popen([sys.executable, str(BENCH / "bare_proxy.py"), "--port", str(port),
                              "--upstream", upstream_url], env=clean_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return process, port


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until(check: Callable[[], bool], process: subprocess.Popen[str], what: str, *,
               timeout: float = 120.0, every: float = 0.02) -> float:
    """Poll ``check`` until it is true; returns the seconds it took. Fails if ``process`` dies."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except httpx2.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before it was ready")
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"{what} was not ready within {timeout:.0f} s")
        time.sleep(every)


def healthy(port: int) -> Callable[[], bool]:
    def check() -> bool:
        return httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    return check
