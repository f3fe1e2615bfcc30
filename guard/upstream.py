"""Forwarding to the OpenAI-compatible upstream: one pooled async HTTP client per process.

``Forwarder`` is a small ASGI app: it sends the request it receives to
``{base_url}{path without /v1}`` and streams the answer back. It knows nothing about
guarding; the middleware in front of it does that. Connection failures become 502 and
timeouts 504, with OpenAI-shaped bodies.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2

from guard.asgi import UPSTREAM_ERROR_KEY, Receive, Scope, Send, error_body, send_json
from guard.ops.tracing import inject_headers

# Hop-by-hop and per-connection headers never cross the proxy.
_DROP_REQUEST = frozenset({b"host", b"content-length", b"connection", b"keep-alive",
                           b"transfer-encoding", b"te", b"upgrade", b"proxy-authorization",
                           b"accept-encoding", b"cookie"})
_DROP_RESPONSE = frozenset({b"content-length", b"connection", b"keep-alive",
                            b"transfer-encoding", b"content-encoding", b"set-cookie"})

DEFAULT_TIMEOUT = httpx2.Timeout(connect=5.0, read=120.0, write=30.0, pool=10.0)
DEFAULT_MAX_DURATION_S = 600.0
"""A whole upstream exchange (a never-ending stream included) ends after this long."""


class Forwarder:
    """ASGI app that forwards every request to ``base_url``.

    ``api_key`` (a server key) replaces the client's ``Authorization``; without it the
    client's own key is forwarded (bring your own key). ``transport`` lets the offline mode
    answer in-process with no network at all. ``max_duration_s`` bounds a whole exchange, so
    an upstream that streams forever is cut off (a stalled one hits the read timeout first).

    When the body breaks off (reset, read timeout, ``max_duration_s``) the body is ended and
    the reason is left in ``scope[UPSTREAM_ERROR_KEY]`` (``upstream_reset``,
    ``upstream_timeout``, ``upstream_deadline``) for the guard in front to record.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: httpx2.Timeout = DEFAULT_TIMEOUT,
        transport: Any = None,
        max_connections: int = 200,
        max_duration_s: float = DEFAULT_MAX_DURATION_S,
    ) -> None:
        if max_duration_s <= 0:
            raise ValueError("max_duration_s must be > 0")
        self.base_url = base_url.rstrip("/")
        self.max_duration_s = max_duration_s
        self.api_key = api_key
        self.timeout = timeout
        self.transport = transport
        self.limits = httpx2.Limits(max_connections=max_connections,
                                    max_keepalive_connections=max_connections)
        self._clients: dict[asyncio.AbstractEventLoop, httpx2.AsyncClient] = {}

    def client(self) -> httpx2.AsyncClient:
        """The pooled client of the running event loop (a client cannot cross loops)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = httpx2.AsyncClient(timeout=self.timeout, limits=self.limits,
                                        transport=self.transport, trust_env=False)
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    def url_for(self, scope: Scope) -> str:
        path = scope["path"]
        path = path[3:] if path.startswith("/v1/") else path
        query = scope.get("query_string", b"").decode("latin-1")
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    def headers_for(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        headers = [(k, v) for k, v in scope.get("headers", ()) if k not in _DROP_REQUEST]
        if self.api_key:
            headers = [(k, v) for k, v in headers if k not in (b"authorization", b"api-key")]
            headers.append((b"authorization", f"Bearer {self.api_key}".encode()))
        inject_headers(headers)  # traceparent of the current (upstream) span
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_all(receive)
        client = self.client()
        request = client.build_request(scope["method"], self.url_for(scope),
                                       headers=self.headers_for(scope), content=body)
        try:
            try:
                response = await client.send(request, stream=True)
            except (httpx2.ConnectError, httpx2.RemoteProtocolError):
                # A pooled keep-alive connection the upstream closed just as it was reused
                # (or a refused connect): once more, on a new connection — as the OpenAI SDKs
                # retry connection errors themselves.
                response = await client.send(request, stream=True)
        except httpx2.TimeoutException:
            await send_json(send, 504, error_body("The upstream did not answer in time.",
                                                  code="guard.upstream_timeout", kind="server_error"))
            return
        except httpx2.TransportError:
            await send_json(send, 502, error_body("The upstream could not be reached.",
                                                  code="guard.upstream_unreachable",
                                                  kind="server_error"))
            return
        if self.api_key and response.status_code >= 400:
            await self._send_error(response, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_duration_s
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(k, v) for k, v in response.headers.raw
                                    if k.lower() not in _DROP_RESPONSE]})
            async for chunk in response.aiter_bytes():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if loop.time() > deadline:
                    scope[UPSTREAM_ERROR_KEY] = "upstream_deadline"
                    break
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx2.TransportError as exc:
            # The upstream broke off mid-body (reset, timeout): end the body; what reads it
            # (the JSON check, the stream guard) sees it incomplete and says so.
            scope[UPSTREAM_ERROR_KEY] = ("upstream_timeout" if isinstance(
                exc, httpx2.TimeoutException) else "upstream_reset")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()


    async def _send_error(self, response: httpx2.Response, send: Send) -> None:
        """An upstream error in server-key mode: never let the server key (or a hint of it)
        reach a client. A refused server key is the operator's problem, not the client's."""
        try:
            body = await response.aread()
        except httpx2.TransportError:
            body = b""
        finally:
            await response.aclose()
        assert self.api_key is not None
        if response.status_code in (401, 403):
            await send_json(send, 502, error_body(
                "The upstream refused this Guard's own API key; the operator must check "
                "OPENAI_API_KEY.", code="guard.upstream_auth_failed", kind="server_error"))
            return
        body = body.replace(self.api_key.encode(), b"[redacted]")
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _DROP_RESPONSE]
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})


async def _read_all(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError("client disconnected")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
