"""``wrap(client)``: a copy of an OpenAI SDK client whose HTTP goes through the engine.

How the client is given a guard, keeping everything else it was configured with:

1. Its HTTP client (``client._client``, an ``httpx2.Client``/``AsyncClient``) is rebuilt
   with the same settings (timeout, headers, auth, event hooks, redirects, base URL) and
   with each of its transports (the pool, and any proxy mounts) wrapped in a guard
   transport. The pool itself — limits, TLS, proxies, HTTP/2 — is shared, not copied.
2. ``client.with_options(http_client=...)`` makes the copy: the SDK's own way to copy a
   client, so API key, organisation, base URL, retries, default headers and query, Azure
   settings all carry over, and later ``with_options`` copies of the wrapped client share
   its guarded HTTP client (they stay guarded).

The original client is left as it was. Like a ``with_options`` copy, the wrapped client
shares the connection pool: closing either closes it.

>>> client = wrap_client(OpenAI(), GuardSource(guard))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import httpx2

from guard.sdk.guards import GuardSource
from guard.sdk.routes import Routes
from guard.sdk.transport import DEFAULT_ROUTES, AsyncGuardTransport, SyncGuardTransport

ClientT = TypeVar("ClientT")


def wrap_client(client: ClientT, source: GuardSource, routes: Routes = DEFAULT_ROUTES) -> ClientT:
    """A copy of ``client`` (``OpenAI``, ``AsyncOpenAI``, ``AzureOpenAI``, ...) that is guarded."""
    http = getattr(client, "_client", None)
    guarded: httpx2.Client | httpx2.AsyncClient
    if isinstance(http, httpx2.Client):
        guarded = _guarded_sync(http, source, routes)
    elif isinstance(http, httpx2.AsyncClient):
        guarded = _guarded_async(http, source, routes)
    else:
        raise TypeError(
            "guard.wrap() takes an OpenAI SDK client (OpenAI, AsyncOpenAI, AzureOpenAI, ...) "
            "whose HTTP client is httpx2 (the SDK's default), got "
            f"{type(client).__name__} with {type(http).__name__}")
    return cast(ClientT, cast(Any, client).with_options(http_client=guarded))


def _guarded_sync(http: httpx2.Client, source: GuardSource, routes: Routes) -> httpx2.Client:
    owner = http
    if isinstance(http._transport, SyncGuardTransport) and http._transport.owner is not None:
        owner = http._transport.owner  # re-wrapping a wrapped client: one owner, one guard

    def guard(transport: httpx2.BaseTransport) -> SyncGuardTransport:
        while isinstance(transport, SyncGuardTransport):
            transport = transport.inner
        return SyncGuardTransport(transport, source=source, routes=routes, owner=owner)

    return httpx2.Client(
        **_settings(http),
        transport=guard(http._transport),
        mounts={p.pattern: None if t is None else guard(t) for p, t in http._mounts.items()},
    )


def _guarded_async(http: httpx2.AsyncClient, source: GuardSource,
                   routes: Routes) -> httpx2.AsyncClient:
    owner = http
    if isinstance(http._transport, AsyncGuardTransport) and http._transport.owner is not None:
        owner = http._transport.owner

    def guard(transport: httpx2.AsyncBaseTransport) -> AsyncGuardTransport:
        while isinstance(transport, AsyncGuardTransport):
            transport = transport.inner
        return AsyncGuardTransport(transport, source=source, routes=routes, owner=owner)

    return httpx2.AsyncClient(
        **_settings(http),
        transport=guard(http._transport),
        mounts={p.pattern: None if t is None else guard(t) for p, t in http._mounts.items()},
    )


def _settings(http: httpx2.Client | httpx2.AsyncClient) -> dict[str, Any]:
    """Everything an httpx2 client applies above its transport."""
    return {
        "auth": http.auth,
        "params": http.params,
        "headers": http.headers,
        "cookies": http.cookies,
        "timeout": http.timeout,
        "follow_redirects": http.follow_redirects,
        "max_redirects": http.max_redirects,
        "event_hooks": http.event_hooks,
        "base_url": http.base_url,
        "trust_env": http.trust_env,
        "default_encoding": http._default_encoding,
    }
