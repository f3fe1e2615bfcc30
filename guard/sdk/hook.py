"""The process-wide hook that lets ``@protect`` guard plain ``OpenAI()`` clients.

A plain client is not wrapped, so something must see its requests. The hook sits where
httpx picks the transport for a request (``_transport_for_url``), on the SDK's default HTTP
client classes only (``openai._base_client._DefaultHttpxClient``, ``_DefaultAsyncHttpxClient``
and the aiohttp one): every ``OpenAI()``/``AsyncOpenAI()`` built without ``http_client=``
uses one of them, and so does ``openai.DefaultHttpxClient(...)``. Outside ``@protect`` /
``context()`` the hooked method returns the usual transport (one context-variable read);
inside, it returns that transport wrapped in a guard transport with no guard of its own,
which guards the OpenAI routes (chat, responses, embeddings) with the scope's guard.

Why there: no SDK resource method changes, so every endpoint, retry and stream behaves as
with a wrapped client; nothing else in the process that uses httpx2 is touched; and because
it patches a method rather than the clients' construction, clients created *before* the
first protected call (a module-level ``client = OpenAI()``) are covered too. Not covered: a
client built on your own ``httpx2.Client``/``AsyncClient`` (or a custom transport): wrap it
with ``guard.wrap(client)``, which also picks up the scope's user and purpose.

The hook is installed by the first call of a protected function or the first ``context()``
block, never at import.

>>> install()  # idempotent
True
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx2

from guard.sdk.scope import current
from guard.sdk.transport import AsyncGuardTransport, SyncGuardTransport

_lock = threading.Lock()
_installed = False


def ensure_installed() -> None:
    """:func:`install`, with a lock-free fast path once done."""
    if not _installed:
        install()


def install() -> bool:
    """Hook the OpenAI SDK's default HTTP clients; ``False`` if the SDK is not installed."""
    global _installed
    with _lock:
        if _installed:
            return True
        try:
            import openai._base_client as sdk
        except ImportError:
            return False
        _hook_sync(sdk._DefaultHttpxClient)
        _hook_async(sdk._DefaultAsyncHttpxClient)
        _hook_async(sdk._DefaultAioHttpClient)
        _installed = True
        return True


def _hook_sync(cls: type[httpx2.Client]) -> None:
    original: Callable[[httpx2.Client, httpx2.URL], httpx2.BaseTransport] = cls._transport_for_url

    def _transport_for_url(self: httpx2.Client, url: httpx2.URL) -> httpx2.BaseTransport:
        transport = original(self, url)
        if current() is None:
            return transport
        return SyncGuardTransport(transport, source=None)

    setattr(cls, "_transport_for_url", _transport_for_url)  # noqa: B010


def _hook_async(cls: type[httpx2.AsyncClient]) -> None:
    original: Callable[[httpx2.AsyncClient, httpx2.URL], httpx2.AsyncBaseTransport] = (
        cls._transport_for_url)

    def _transport_for_url(self: httpx2.AsyncClient,
                           url: httpx2.URL) -> httpx2.AsyncBaseTransport:
        transport = original(self, url)
        if current() is None:
            return transport
        return AsyncGuardTransport(transport, source=None)

    setattr(cls, "_transport_for_url", _transport_for_url)  # noqa: B010
