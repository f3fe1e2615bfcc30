"""The operations side of a Guard server: probes, metrics, warm-up, reload, shutdown.

:class:`Operations` is what the proxy (``guard.proxy.ProxyApp``) composes; it answers
``GET /healthz``, ``GET /readyz`` and ``GET /metrics`` before any key check (they carry no
content), warms the PII model up in the background, listens for policy reloads and, on
shutdown, marks the instance not ready before the proxy flushes the audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from guard.engine import Guard
from guard.ops.health import Readiness
from guard.ops.metrics import GuardMetrics, multiprocess_dir
from guard.ops.reload import PolicyReloader, ReloadResult

log = logging.getLogger("guard.ops")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

METRICS_REFRESH_S = 5.0
"""How often the audit gauges are refreshed between requests (for quiet workers)."""


class Operations:
    """Probes, metrics and policy reload for one guard in one server process.

    ``metrics``: serve ``/metrics`` (and count). ``policy_source``: the policy file (or pack
    name) to reload on ``SIGHUP``; ``watch_interval_s``: also poll it for changes.
    """

    def __init__(self, guard: Guard, *, metrics: bool = True,
                 policy_source: str | Path | None = None,
                 watch_interval_s: float | None = None) -> None:
        self.guard = guard
        self.readiness = Readiness(guard)
        self.metrics = GuardMetrics().attach(guard) if metrics else None
        self._metrics_app = self.metrics.asgi_app() if self.metrics is not None else None
        self.reloader = (PolicyReloader(guard, policy_source, watch_interval_s=watch_interval_s,
                                        on_result=self._reloaded)
                         if policy_source is not None else None)
        self._tasks: list[asyncio.Task[None]] = []

    # -- HTTP ------------------------------------------------------------------------------

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer an operations request; ``False`` when ``scope`` is not one."""
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            return False
        path = scope["path"]
        if path == "/healthz":
            await _send_json(send, 200, b'{"status":"ok"}')
        elif path == "/readyz":
            status, body = self.readiness.response()
            await _send_json(send, status, body)
        elif path == "/metrics" and self._metrics_app is not None:
            await self._metrics_app(scope, receive, send)
        else:
            return False
        return True

    # -- lifespan --------------------------------------------------------------------------

    async def startup(self) -> None:
        if not getattr(self.guard.detector, "warmed", True):
            self.readiness.warming = True
            self._tasks.append(asyncio.create_task(self._warm_up()))
        if self.reloader is not None:
            self.reloader.start()
        if self.metrics is not None:
            self._tasks.append(asyncio.create_task(self._refresh_metrics()))

    async def shutdown(self) -> None:
        """Not ready from now on; stop the background work (the proxy flushes the audit)."""
        self.readiness.shutting_down = True
        if self.reloader is not None:
            await self.reloader.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def closed(self) -> None:
        """After the audit trail was flushed: final metrics, and leave the worker pool."""
        if self.metrics is not None:
            self.metrics.refresh()
            self.metrics.close()
        if multiprocess_dir():
            from prometheus_client import multiprocess

            # Live gauges of this worker (streams open, audit queue) stop counting.
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    async def _warm_up(self) -> None:
        try:
            await asyncio.to_thread(self.guard.detector.warm_up)
        except Exception as exc:  # the model still answers; only the first call is slower
            log.error("PII model warm-up failed: %s", type(exc).__name__)
        finally:
            self.readiness.warming = False

    async def _refresh_metrics(self) -> None:
        assert self.metrics is not None
        while True:
            await asyncio.sleep(METRICS_REFRESH_S)
            self.metrics.refresh()

    def _reloaded(self, result: ReloadResult) -> None:
        self.readiness.reload_error = result.error
        if self.metrics is not None:
            self.metrics.policy_reloads.labels("applied" if result.applied else "refused").inc()
            if result.applied:
                self.metrics.policy_changed(result.name, result.sha256)


async def _send_json(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})
