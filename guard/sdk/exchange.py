"""One guarded HTTP attempt of an OpenAI SDK client, as the proxy would answer it.

An :class:`Exchange` owns the attempt's :class:`~guard.call.Call` (and so its one audit
record) and turns engine decisions into HTTP: the redacted request to send, or the error
response the proxy would send (same status, same OpenAI-shaped body, same ``x-guard-*``
headers, so the SDK raises its own ``BadRequestError``); then the checked answer. It does no
I/O: the sync and async transports (:mod:`guard.sdk.transport`) drive it::

    exchange = Exchange(guard, request, scope)
    outcome = await exchange.check_request(raw_body)     # a Request to send, or a Response
    response = await inner.handle_async_request(outcome)
    answer = await exchange.check_response(response, await response.aread())
    exchange.end()                                        # writes the audit record
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx2

from guard.asgi import error_body
from guard.engine import Guard
from guard.errors import WireFormatError
from guard.sdk.routes import api_key_of
from guard.sdk.scope import Scope
from guard.stream import StreamGuard

# Statuses for block codes other than 400 (as the proxy answers them, see guard.asgi).
STATUS_FOR_CODE = {"guard.moderation_unavailable": 503}

_GUARD_HEADERS = frozenset({"x-guard-request-id", "x-guard-decision", "x-guard-mode"})
# Headers that describe the upstream's bytes: dropped when the client gets other bytes.
_BODY_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding"})
_RESPONSE_EXTENSIONS = ("http_version", "reason_phrase")


class Exchange:
    """The engine's side of one HTTP attempt; create one per attempt, never share it."""

    def __init__(self, guard: Guard, request: httpx2.Request, scope: Scope | None) -> None:
        self.guard = guard
        self.request = request
        self.call = guard.call(
            route=request.url.path,
            api_key=api_key_of(request.headers),
            user=scope.user if scope is not None else None,
            context=scope.record() if scope is not None else None,
        )
        self.ended = False

    # -- the request -------------------------------------------------------------------

    async def check_request(self, raw: bytes) -> httpx2.Request | httpx2.Response:
        """The request to send upstream (body redacted), or the response that refuses it."""
        try:
            body = json.loads(raw)
        except ValueError:
            return self.reject(400, "The request body is not valid JSON.", status="rejected")
        if not isinstance(body, dict):
            return self.reject(400, "The request body must be a JSON object.", status="rejected")
        try:
            verdict = await self.call.check_request(body)
        except WireFormatError as exc:
            return self.reject(400, str(exc), param=exc.param, code=exc.code, status="rejected")
        if verdict.blocked:
            return self.reject(STATUS_FOR_CODE.get(verdict.code or "", 400),
                               verdict.message or "Blocked by policy.", code=verdict.code)
        content = json.dumps(verdict.body).encode() if verdict.body != body else raw
        headers = [(k, v) for k, v in self.request.headers.raw if k.lower() != b"content-length"]
        # A new request: the SDK keeps its own (original body) to build each retry from.
        return httpx2.Request(self.request.method, self.request.url, headers=headers,
                              content=content, extensions=self.request.extensions)

    def reject(self, status_code: int, message: str, *, code: str | None = None,
               param: str | None = None, kind: str = "invalid_request_error",
               status: str | None = None) -> httpx2.Response:
        """An OpenAI-shaped error the SDK raises as its own exception and never retries."""
        if status is not None:
            self.call.status = status
        headers = [("content-type", "application/json"), *self.guard_headers(),
                   # A decision is not a glitch: retrying would only ask the same question.
                   ("x-should-retry", "false")]
        return httpx2.Response(status_code, headers=headers,
                               content=error_body(message, code=code, param=param, kind=kind))

    # -- the response ------------------------------------------------------------------

    def upstream_latency(self, started: float) -> None:
        self.call.add_latency("upstream", (time.perf_counter() - started) * 1000)

    def streams(self, response: httpx2.Response) -> bool:
        """True for a streamed answer to a ``stream: true`` request."""
        return (self.call.stream and response.status_code == 200
                and response.headers.get("content-type", "").startswith("text/event-stream"))

    def upstream_error(self, response: httpx2.Response) -> httpx2.Response:
        """An upstream error goes to the SDK as it came (its retry logic sees it unchanged)."""
        self.call.status = "upstream_error"
        self.call.error = f"http_{response.status_code}"
        return httpx2.Response(response.status_code,
                               headers=self.headers_from(response, same_body=True),
                               stream=response.stream, extensions=_extensions(response))

    async def check_response(self, response: httpx2.Response, raw: bytes) -> httpx2.Response:
        """The answer with output rules applied and placeholders restored."""
        try:
            answer = json.loads(raw)
            if not isinstance(answer, dict):
                raise WireFormatError("The answer is not a JSON object.")
            verdict = await self.call.check_response(answer)
        except (ValueError, WireFormatError):
            # Never pass on an answer the output rules could not read.
            self.call.status, self.call.error = "upstream_error", "unreadable_response"
            return self.reject(502, "The upstream answer could not be checked, so it was "
                                    "withheld.", kind="server_error",
                               code="guard.unreadable_response")
        content = json.dumps(verdict.body).encode() if verdict.body != answer else raw
        return httpx2.Response(response.status_code, headers=self.headers_from(response),
                               content=content, extensions=_extensions(response))

    def stream_guard(self) -> StreamGuard:
        return self.call.stream_guard()

    def relay(self, response: httpx2.Response,
              stream: httpx2.SyncByteStream | httpx2.AsyncByteStream) -> httpx2.Response:
        """``response``'s status and headers (plus Guard's) over ``stream`` (decoded bytes)."""
        return httpx2.Response(response.status_code, headers=self.headers_from(response),
                               stream=stream, extensions=_extensions(response))

    def headers_from(self, response: httpx2.Response, *,
                     same_body: bool = False) -> list[tuple[str, str]]:
        drop = _GUARD_HEADERS if same_body else _GUARD_HEADERS | _BODY_HEADERS
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in drop]
        return [*headers, *self.guard_headers()]

    def guard_headers(self) -> list[tuple[str, str]]:
        headers = [("x-guard-request-id", self.call.request_id),
                   ("x-guard-decision", self.call.decision)]
        if self.guard.policy.mode == "monitor":
            headers.append(("x-guard-mode", "monitor"))
        return headers

    # -- the end -------------------------------------------------------------------------

    def end(self, exc: BaseException | None = None) -> None:
        """Write the attempt's audit record (once). ``exc``: why the attempt failed."""
        if self.ended:
            return
        self.ended = True
        if exc is None:
            self.call.__exit__(None, None, None)
            return
        if isinstance(exc, httpx2.TransportError) and self.call.status == "ok":
            # Unreachable, reset or timed out: the proxy's 502/504 cases.
            self.call.status, self.call.error = "upstream_error", type(exc).__name__
        self.call.__exit__(type(exc), exc, exc.__traceback__)


def _extensions(response: httpx2.Response) -> dict[str, Any]:
    return {k: response.extensions[k] for k in _RESPONSE_EXTENSIONS if k in response.extensions}
