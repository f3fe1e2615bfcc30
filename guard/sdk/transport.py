"""httpx2 transports that put the engine between an OpenAI SDK client and the network.

A transport is httpx's one extension point for "send this request, give me the response"; it
sits below the SDK's retries, auth and redirects and above the connection pool. So a wrapped
client keeps every behaviour of the SDK (all endpoints, retries with their original body,
streaming, timeouts) and the engine sees each HTTP attempt exactly once::

    transport = SyncGuardTransport(http_client._transport, source=GuardSource(guard))
    response = transport.handle_request(request)     # guarded or passed through

Requests to guarded routes (:class:`~guard.sdk.routes.Routes`) go through an
:class:`~guard.sdk.exchange.Exchange`; everything else goes to the inner transport untouched.
With ``source=None`` (the hook for plain clients, :mod:`guard.sdk.hook`) a request is guarded
only inside ``@protect``/``context()``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx2

from guard.engine import Guard
from guard.sdk.exchange import Exchange
from guard.sdk.guards import GuardSource
from guard.sdk.loop import run_sync
from guard.sdk.routes import Routes
from guard.sdk.scope import Scope, current
from guard.sdk.streams import AsyncGuardedStream, SyncGuardedStream

DEFAULT_ROUTES = Routes()


@dataclass(frozen=True)
class Plan:
    """For one request: which guard source, in which scope, against which API base."""

    source: GuardSource
    scope: Scope | None
    base_url: str


def plan_for(request: httpx2.Request, source: GuardSource | None, routes: Routes) -> Plan | None:
    """How to guard ``request``, or ``None`` to pass it through.

    A wrapped client's own guard applies unless the enclosing scope names a policy; a plain
    client (``source=None``) is guarded only inside a scope.
    """
    pattern = routes.match(request)
    if pattern is None:
        return None
    scope = current()
    if scope is not None and (source is None or scope.policy_override):
        chosen = scope.source
    elif source is not None:
        chosen = source
    else:
        return None
    return Plan(chosen, scope, routes.base_url(request, pattern))


class SyncGuardTransport(httpx2.BaseTransport):
    """Guards a sync client's requests; the engine runs on the background loop.

    ``owner`` is the HTTP client whose pool ``inner`` belongs to: closing this transport
    closes it (as closing a ``with_options`` copy closes the pool it shares), and holding it
    keeps its garbage-collection ``close`` from pulling the pool away while still in use.
    """

    def __init__(self, inner: httpx2.BaseTransport, *, source: GuardSource | None,
                 routes: Routes = DEFAULT_ROUTES, owner: httpx2.Client | None = None) -> None:
        self.inner = inner
        self.source = source
        self.routes = routes
        self.owner = owner

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        plan = plan_for(request, self.source, self.routes)
        if plan is None:
            return self.inner.handle_request(request)
        exchange = Exchange(plan.source.resolve(plan.base_url), request, plan.scope)
        try:
            outcome = run_sync(exchange.check_request(request.read()))
            if isinstance(outcome, httpx2.Response):
                exchange.end()
                return outcome
            started = time.perf_counter()
            response = self.inner.handle_request(outcome)
            exchange.upstream_latency(started)
            if exchange.streams(response):
                return exchange.relay(response, SyncGuardedStream(exchange, response))
            if response.status_code != 200:
                relayed = exchange.upstream_error(response)
                exchange.end()
                return relayed
            try:
                raw = response.read()
            finally:
                response.close()
            answer = run_sync(exchange.check_response(response, raw))
            exchange.end()
            return answer
        except BaseException as exc:
            exchange.end(exc)
            raise

    def close(self) -> None:
        if self.owner is not None:
            self.owner.close()
        else:
            self.inner.close()


class AsyncGuardTransport(httpx2.AsyncBaseTransport):
    """Guards an async client's requests; the engine runs on the caller's event loop."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, *, source: GuardSource | None,
                 routes: Routes = DEFAULT_ROUTES, owner: httpx2.AsyncClient | None = None) -> None:
        self.inner = inner
        self.source = source
        self.routes = routes
        self.owner = owner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        plan = plan_for(request, self.source, self.routes)
        if plan is None:
            return await self.inner.handle_async_request(request)
        exchange = Exchange(await _resolve(plan), request, plan.scope)
        try:
            outcome = await exchange.check_request(await request.aread())
            if isinstance(outcome, httpx2.Response):
                exchange.end()
                return outcome
            started = time.perf_counter()
            response = await self.inner.handle_async_request(outcome)
            exchange.upstream_latency(started)
            if exchange.streams(response):
                return exchange.relay(response, AsyncGuardedStream(exchange, response))
            if response.status_code != 200:
                relayed = exchange.upstream_error(response)
                exchange.end()
                return relayed
            try:
                raw = await response.aread()
            finally:
                await response.aclose()
            answer = await exchange.check_response(response, raw)
            exchange.end()
            return answer
        except BaseException as exc:
            exchange.end(exc)
            raise

    async def aclose(self) -> None:
        if self.owner is not None:
            await self.owner.aclose()
        else:
            await self.inner.aclose()


async def _resolve(plan: Plan) -> Guard:
    guard = plan.source.cached(plan.base_url)
    if guard is None:
        # First use of this policy/base: building may load a model; keep the loop free.
        guard = await asyncio.to_thread(plan.source.resolve, plan.base_url)
    return guard
