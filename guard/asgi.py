"""``GuardMiddleware``: pure ASGI middleware that guards the OpenAI-format routes of an app.

One line in a Starlette or FastAPI app::

    app.add_middleware(GuardMiddleware, guard=Guard.from_policy("default"))

For each guarded request (by default ``POST`` paths ending in ``/chat/completions``,
``/responses`` or ``/embeddings``; the path's ending picks the wire format) it
buffers the body up to a limit, runs the input checks, rewrites the body and its
``content-length``, lets the app answer, then checks and restores the answer before
``http.response.start`` goes out. Everything else passes through untouched. This is the only
place where engine decisions become HTTP statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from guard.call import Call
from guard.engine import Guard
from guard.errors import WireFormatError
from guard.ops.tracing import client_trace_context, upstream_done
from guard.stream import StreamGuard
from guard.wire.jsonbody import parse_json_object

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_ROUTES = ("*/chat/completions", "*/responses", "*/embeddings")
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024

logger = logging.getLogger(__name__)

_STATUS_FOR_CODE = {"guard.moderation_unavailable": 503}

UPSTREAM_ERROR_KEY = "guard.upstream_error"
"""Scope key where a forwarding app may say why an answer's body broke off (for the audit)."""


def error_body(message: str, *, code: str | None = None, param: str | None = None,
               kind: str = "invalid_request_error") -> bytes:
    """An OpenAI-shaped error body (the SDKs turn it into their own exceptions)."""
    return json.dumps({"error": {"message": message, "type": kind, "param": param,
                                 "code": code}}).encode()


async def send_json(send: Send, status: int, body: bytes,
                    headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def bearer_token(scope: Scope) -> str | None:
    """The API key a client presented (``Authorization: Bearer`` or ``api-key``)."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"api-key" and value:
            return bytes(value).decode("latin-1").strip()
    return None


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


class _StreamStopped(Exception):
    """Raised into the app's ``send`` after a mid-stream block, so it closes the upstream."""


class _StreamRelay:
    """One guarded event stream: the app's body messages go into the :class:`StreamGuard`
    (reader side, in the app's task) while a writer task sends what it releases to the
    client — so a check still running never stalls reading, and checked text goes out as
    soon as it is decided, even while the upstream is silent."""

    def __init__(self, stream: StreamGuard, send: Send, stop_app: Callable[[], object]) -> None:
        self.stream = stream
        self.send = send
        self.stop_app = stop_app
        self.sent_all = False
        self.writer = asyncio.create_task(self._write())

    async def body(self, message: Message) -> None:
        if self.stream.stopped:
            raise _StreamStopped
        await self.stream.ingest(message.get("body", b""))
        if not message.get("more_body", False):
            self.stream.end_input()

    async def _write(self) -> None:
        try:
            async for out in self.stream.releases():
                await self.send({"type": "http.response.body", "body": out, "more_body": True})
                if self.stream.delivered:  # the last event out: a client may hang up from here on
                    self.sent_all = True
                    self.stop_app()  # the upstream may keep its body open: stop reading it
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception:
            self.stop_app()
            raise
        if self.stream.stopped:
            self.stop_app()  # a block: read no more of the upstream

    @property
    def ended(self) -> bool:
        """Everything the client will get was sent (a block, or the stream to its end): a
        client that hangs up now, the upstream body still open, did not disconnect early."""
        return self.stream.stopped or self.sent_all

    async def aclose(self) -> BaseException | None:
        """Stop the writer and the stream's checks if still running; the writer's failure."""
        if not self.writer.done():
            self.writer.cancel()
        await asyncio.wait({self.writer})
        await self.stream.aclose()
        return None if self.writer.cancelled() else self.writer.exception()


class GuardMiddleware:
    """Guard the OpenAI-style routes of an ASGI app.

    ``routes`` are glob patterns over the path (``*/chat/completions``); only ``POST``
    requests to them are guarded. ``max_body_bytes`` bounds what is buffered (413 beyond).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        guard: Guard,
        routes: Sequence[str] = DEFAULT_ROUTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")
        self.app = app
        self.guard = guard
        self.routes = tuple(routes)
        self.max_body_bytes = max_body_bytes

    def guards(self, scope: Scope) -> bool:
        return (scope["type"] == "http" and scope.get("method") == "POST"
                and any(fnmatch.fnmatchcase(scope["path"], p) for p in self.routes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.guards(scope):
            await self.app(scope, receive, send)
            return
        with client_trace_context(scope.get("headers", ())):  # the client's traceparent
            await _GuardedExchange(self, scope, receive, send).run()


class _GuardedExchange:
    """The state of one guarded request/response; created per request, never shared."""

    def __init__(self, middleware: GuardMiddleware, scope: Scope, receive: Receive,
                 send: Send) -> None:
        self.mw = middleware
        self.scope = scope
        self.receive = receive
        self.send = send
        self.call: Call = middleware.guard.call(route=scope["path"], api_key=bearer_token(scope))
        self.response_started = False

    @property
    def guard_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"x-guard-request-id", self.call.request_id.encode()),
                   (b"x-guard-decision", self.call.decision.encode())]
        if self.mw.guard.policy.mode == "monitor":
            headers.append((b"x-guard-mode", b"monitor"))
        return headers

    async def fail(self, status: int, message: str, *, code: str | None = None,
                   param: str | None = None, kind: str = "invalid_request_error") -> None:
        body = error_body(message, code=code, param=param, kind=kind)
        await send_json(self.send, status, body, self.guard_headers)
        self.response_started = True

    async def run(self) -> None:
        async with self.call:
            try:
                raw = await self._read_body()
            except _BodyTooLarge:
                self.call.status = "rejected"
                await self.fail(413, f"The request body is larger than the limit of "
                                     f"{self.mw.max_body_bytes} bytes.", code="request_too_large")
                return
            except _ClientGone:
                self.call.status, self.call.truncated = "client_disconnected", True
                return
            try:
                await self._guard(raw)
            except Exception as exc:
                # A bug in a stage: fail closed with an OpenAI-shaped 500, never a stack trace
                # and never an unchecked request upstream. Only the type is logged and stored.
                self.call.status, self.call.error = "error", type(exc).__name__
                logger.error("guard failed on request %s: %s", self.call.request_id,
                             type(exc).__name__)
                if not self.response_started:
                    await self.fail(500, "Guard failed while checking this request; it was not "
                                         "sent on.", kind="server_error", code="guard.internal_error")

    async def _guard(self, raw: bytes) -> None:
        try:
            body = parse_json_object(raw)
            verdict = await self.call.check_request(body)
        except WireFormatError as exc:
            self.call.status = "rejected"
            await self.fail(400, str(exc), param=exc.param, code=exc.code)
            return
        if verdict.blocked:
            await self.fail(_STATUS_FOR_CODE.get(verdict.code or "", 400),
                            verdict.message or "Blocked by policy.", code=verdict.code)
            return
        forwarded = json.dumps(verdict.body).encode() if verdict.body != body else raw
        await self._forward(forwarded)

    async def _read_body(self) -> bytes:
        declared = _header(self.scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.mw.max_body_bytes:
            raise _BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.mw.max_body_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _forward(self, body: bytes) -> None:
        scope = dict(self.scope)
        scope["headers"] = [(k, v) for k, v in self.scope.get("headers", ())
                            if k != b"content-length"] + [
            (b"content-length", str(len(body)).encode())]
        delivered = False
        gone = asyncio.Event()

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def watch_client() -> None:
            # The body is read; the next message from the server can only be a disconnect.
            while (await self.receive())["type"] != "http.disconnect":
                pass
            gone.set()

        started = time.perf_counter()
        start: Message | None = None
        chunks: list[bytes] = []
        relay: _StreamRelay | None = None

        async def capture(message: Message) -> None:
            nonlocal start, relay
            if message["type"] == "http.response.start":
                start = message
                self.call.add_latency("upstream", (time.perf_counter() - started) * 1000)
                if self.call.stream and _is_event_stream(message):
                    await self._start_stream(message)
                    relay = _StreamRelay(self.call.stream_guard(), self.send, stop_app=app.cancel)
                return
            if message["type"] != "http.response.body" or start is None:
                await self.send(message)
                return
            if not message.get("more_body", False) and scope.get(UPSTREAM_ERROR_KEY):
                self.call.error = str(scope[UPSTREAM_ERROR_KEY])
            if relay is not None:
                await relay.body(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await self._respond(start, b"".join(chunks))

        # The app runs inside the upstream span, so a forwarder sends it as traceparent.
        writer_failed: BaseException | None = None
        with self.call.trace.upstream(self.scope["path"], self.call.model) as span:
            app: asyncio.Task[None] = asyncio.ensure_future(self.mw.app(scope, replay, capture))
            watcher = asyncio.create_task(watch_client())
            try:
                await asyncio.wait({app, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if relay is not None and not gone.is_set():
                    relay.stream.end_input()  # the app is done: what it sent is all there is
                    await asyncio.wait({relay.writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                watcher.cancel()
                unfinished = not app.done() or (relay is not None and not relay.writer.done())
                if unfinished and not (relay is not None and relay.ended):
                    # The client went away: stop the upstream request now, not when it finishes.
                    self.call.status, self.call.truncated = "client_disconnected", True
                if not app.done():
                    app.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({app})
                if relay is not None:
                    writer_failed = await relay.aclose()
                upstream_done(span, usage=self.call.usage,
                              status=int(start["status"]) if start is not None else None)
        if writer_failed is not None:
            self.call.status, self.call.error = "error", type(writer_failed).__name__
            return
        if app.cancelled() or isinstance(app.exception(), _StreamStopped):
            return
        if app.exception() is not None:
            self.call.status = "error"
            self.call.error = type(app.exception()).__name__
            if not self.response_started:
                await self.fail(500, "The guarded app failed while answering.",
                                kind="server_error", code="guard.app_error")
            return
        if not self.response_started:
            self.call.status = "error"
            self.call.error = "no_response"
            await self.fail(502, "The upstream app ended without a response.", kind="server_error",
                            code="guard.upstream_error")

    async def _start_stream(self, start: Message) -> None:
        headers = [(k, v) for k, v in start.get("headers", ())
                   if k not in (b"content-length", b"x-guard-request-id", b"x-guard-decision")]
        self.response_started = True
        await self.send({"type": "http.response.start", "status": start["status"],
                         "headers": [*headers, *self.guard_headers]})

    async def _respond(self, start: Message, body: bytes) -> None:
        status = int(start["status"])
        headers = [(k, v) for k, v in start.get("headers", ())
                   if k not in (b"content-length", b"x-guard-request-id", b"x-guard-decision")]
        if status != 200:
            # Upstream errors reach the client with their status and body.
            self.call.status = "upstream_error"
            self.call.error = f"http_{status}"
            await self._send(status, headers, body)
            return
        try:
            answer = json.loads(body)
            verdict = await self.call.check_response(answer)
        except (ValueError, WireFormatError):
            # Never pass on an answer the output rules could not read.
            self.call.status = "upstream_error"
            self.call.error = self.call.error or "unreadable_response"
            await self.fail(502, "The upstream answer could not be checked, so it was withheld.",
                            kind="server_error", code="guard.unreadable_response")
            return
        out = json.dumps(verdict.body).encode() if verdict.body != answer else body
        await self._send(status, headers, out)

    async def _send(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.response_started = True
        await self.send({"type": "http.response.start", "status": status, "headers": [
            *headers, (b"content-length", str(len(body)).encode()), *self.guard_headers]})
        await self.send({"type": "http.response.body", "body": body, "more_body": False})


def _is_event_stream(start: Message) -> bool:
    return int(start["status"]) == 200 and any(
        k == b"content-type" and v.startswith(b"text/event-stream")
        for k, v in start.get("headers", ()))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None
