"""Test helpers shipped with Guard, for our tests and yours.

- :class:`LoopbackServer` runs any ASGI app under uvicorn in a thread on 127.0.0.1 (a free
  port), because an in-process transport buffers whole bodies and cannot test streaming.
- :class:`FakeUpstream` is an OpenAI-compatible upstream that records every request it
  receives and can be told to fail; with ``moderation_triggers`` it also answers
  ``/v1/moderations``.
- :class:`~guard.audit.MemorySink` (in ``guard.audit``) collects audit records in memory.

Example::

    with FakeUpstream() as upstream:
        guard = Guard.from_policy("default", upstream_url=upstream.base_url,
                                  audit_sink=MemorySink())
        ...
        assert "jane@example.com" not in json.dumps(upstream.requests[-1].body)
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from guard.moderation import CATEGORIES as _CATEGORIES
from guard.offline import (
    OfflineUpstream,
    ReceivedRequest,
    offline_reply,
    openai_error,
    sse_lines,
    stream_chunks,
    wants_usage,
)

__all__ = ["FakeUpstream", "LoopbackServer", "ReceivedRequest"]


_IMAGE_CATEGORIES = frozenset({"self-harm", "self-harm/intent", "self-harm/instructions",
                               "sexual", "violence", "violence/graphic"})
"""What ``omni-moderation-latest`` evaluates for images; the rest are text only."""


class LoopbackServer:
    """Serve an ASGI app on 127.0.0.1 from a background thread; a context manager."""

    def __init__(self, app: Any, *, lifespan: Literal["auto", "on", "off"] = "off",
                 port: int = 0) -> None:
        self.app = app
        self.lifespan = lifespan
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", log_level="error",
                                lifespan=self.lifespan, ws="none", access_log=False)
        self._server = uvicorn.Server(config)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", self.port))
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("loopback server did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class FakeUpstream(OfflineUpstream):
    """An OpenAI-compatible upstream on loopback that records what it receives.

    Switches a test may flip between requests:

    - ``reply``: ``body -> chat completion dict`` (default: the offline model's echo);
    - ``status`` / ``error_body`` / ``error_headers``: answer chat completions with this HTTP
      error (``error_headers={"retry-after": "7"}`` for a rate limit);
    - ``delay_s``: wait before answering (to provoke timeouts);
    - ``moderation_triggers``: word → {category: score}; texts containing the word flag it;
    - ``moderation_status`` / ``moderation_delay_s``: make the moderation endpoint fail.

    Streaming (``stream: true``): the reply is sent as chunks of ``stream_chunk_chars``
    characters (or exactly the pieces in ``stream_pieces``), ``stream_delay_s`` apart;
    ``stream_break_after`` drops the connection after that many chunks; ``stream_forever``
    keeps sending content chunks until the client goes away (``stream_stall`` sends nothing
    more after the first chunk, holding the connection open); ``stream_cancelled`` becomes
    true when the client side went away before the end.
    """

    def __init__(
        self,
        *,
        reply: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
        moderation_triggers: Mapping[str, Mapping[str, float]] | None = None,
        port: int = 0,
    ) -> None:
        self.reply = reply or offline_reply
        self.moderation_triggers = dict(moderation_triggers or {
            "kill": {"violence": 0.96}, "bomb": {"illicit/violent": 0.9}})
        self.status = 200
        self.error_body: Any = None
        self.error_headers: dict[str, str] = {}
        self.delay_s = 0.0
        self.moderation_status = 200
        self.moderation_delay_s = 0.0
        self.stream_chunk_chars = 4
        self.stream_pieces: list[str] | None = None
        self.stream_delay_s = 0.0
        self.stream_break_after: int | None = None
        self.stream_forever = False
        self.stream_stall = False
        self.raw_stream: list[bytes] | None = None
        """Exact bytes to stream instead of the reply (for hand-written SSE)."""
        self.stream_cancelled = False
        self.stream_finished = False
        self.requests: list[ReceivedRequest] = []
        super().__init__(keep=100_000)
        self._server = LoopbackServer(self, port=port)

    def routes(self, prefix: str) -> list[Route]:
        return [*super().routes(prefix),
                Route(f"{prefix}/moderations", self.moderations, methods=["POST"])]

    @property
    def base_url(self) -> str:
        return f"{self._server.url}/v1"

    @property
    def chat_requests(self) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    async def record(self, request: Request) -> Any:
        body = await super().record(request)
        self.requests.append(self.received[-1])
        return body

    async def chat_completions(self, request: Request) -> Response:
        body = await self.record(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return JSONResponse(self.error_body or {"error": {
                "message": "fake upstream failure", "type": "server_error", "param": None,
                "code": None}}, status_code=self.status, headers=self.error_headers)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return openai_error(400, "'messages' is required.")
        reply = self.reply(body)
        if body.get("stream") is True and (self.stream_forever or self.stream_stall):
            first = stream_chunks(reply, chunk_chars=self.stream_chunk_chars)[0]
            return StreamingResponse(self._endless(first), media_type="text/event-stream")
        if body.get("stream") is True:
            return StreamingResponse(self._stream(reply, wants_usage(body)),
                                     media_type="text/event-stream")
        return JSONResponse(reply)

    async def _stream(self, reply: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
        if self.stream_pieces is not None:
            reply = {**reply, "choices": [{**reply["choices"][0], "message": {
                **reply["choices"][0]["message"], "content": "".join(self.stream_pieces)}}]}
        chunks = stream_chunks(reply, chunk_chars=self.stream_chunk_chars,
                               include_usage=include_usage)
        if self.stream_pieces is not None:  # exactly these content pieces, one per chunk
            head, tail = chunks[:1], chunks[-2 if include_usage else -1:]
            pieces = [{**chunks[0], "choices": [{"index": 0, "delta": {"content": p},
                                                 "finish_reason": None, "logprobs": None}]}
                      for p in self.stream_pieces]
            chunks = head + pieces + tail
        self.stream_cancelled = self.stream_finished = False
        events = self.raw_stream if self.raw_stream is not None else sse_lines(chunks)
        try:
            for n, event in enumerate(events):
                if self.stream_break_after is not None and n >= self.stream_break_after:
                    raise ConnectionResetError("fake upstream breaks the stream")
                yield event
                if self.stream_delay_s:
                    await asyncio.sleep(self.stream_delay_s)
            self.stream_finished = True
        except (asyncio.CancelledError, GeneratorExit):
            self.stream_cancelled = True
            raise

    async def _endless(self, first: dict[str, Any]) -> AsyncIterator[bytes]:
        """The first chunk, then content forever (``stream_forever``) or silence (stall)."""
        self.stream_cancelled = self.stream_finished = False
        piece = {**first, "choices": [{"index": 0, "delta": {"content": "and on "},
                                       "finish_reason": None, "logprobs": None}]}
        try:
            yield f"data: {json.dumps(first)}\n\n".encode()
            while True:
                if self.stream_forever:
                    yield f"data: {json.dumps(piece)}\n\n".encode()
                await asyncio.sleep(0.001 if self.stream_forever else 0.05)
        except (asyncio.CancelledError, GeneratorExit):
            self.stream_cancelled = True
            raise

    async def moderations(self, request: Request) -> Response:
        body = await self.record(request)
        if self.moderation_delay_s:
            await asyncio.sleep(self.moderation_delay_s)
        if self.moderation_status != 200:
            return openai_error(self.moderation_status, "fake moderation failure",
                                kind="server_error")
        inputs = body.get("input") if isinstance(body, dict) else None
        items = inputs if isinstance(inputs, list) else [inputs]
        results = []
        for item in items:
            text = item if isinstance(item, str) else (
                item.get("text", "") if isinstance(item, dict) else "")
            scores = {c: 0.0001 for c in _CATEGORIES}
            for word, flagged in self.moderation_triggers.items():
                if word in text.lower():
                    for category, score in flagged.items():
                        scores[category] = max(scores[category], score)
            is_image = isinstance(item, dict) and item.get("type") == "image_url"
            results.append({
                "flagged": any(s >= 0.5 for s in scores.values()),
                "categories": {c: s >= 0.5 for c, s in scores.items()},
                "category_scores": scores,
                "category_applied_input_types": {
                    c: (["image"] if is_image and c in _IMAGE_CATEGORIES else
                        [] if is_image else ["text"]) for c in _CATEGORIES},
            })
        return JSONResponse({"id": "modr-fake", "model": "omni-moderation-latest",
                             "results": results})

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeUpstream:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

