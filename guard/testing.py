"""Test helpers shipped with Guard, for our tests and yours.

- :class:`LoopbackServer` runs any ASGI app under uvicorn in a thread on 127.0.0.1 (a free
  port), because an in-process transport buffers whole bodies and cannot test streaming.
- :class:`FakeUpstream` is an OpenAI-compatible upstream that records every request it
  receives and can be told to fail; with ``moderation_triggers`` it also answers
  ``/v1/moderations``. It keeps uploaded files and runs batches (``/v1/files``,
  ``/v1/batches``): retrieving a batch completes it, answering each line as its url's
  route would.
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
import itertools
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from guard.moderation import CATEGORIES as _CATEGORIES
from guard.offline import (
    OfflineUpstream,
    ReceivedRequest,
    embeddings_problem,
    offline_embeddings,
    offline_reply,
    offline_response,
    openai_error,
    response_events,
    sse_lines,
    stream_chunks,
    typed_sse_lines,
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


@dataclass
class StoredFile:
    """A file the fake upstream holds (uploaded, or written by a batch)."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.content),
                "created_at": self.created_at, "filename": self.filename,
                "purpose": self.purpose, "status": "processed", "expires_at": None,
                "status_details": None}


class FakeUpstream(OfflineUpstream):
    """An OpenAI-compatible upstream on loopback that records what it receives.

    Switches a test may flip between requests:

    - ``reply``: ``body -> chat completion dict`` (default: the offline model's echo);
    - ``response_reply``: ``body -> Responses API response dict`` for ``/v1/responses``;
    - ``status`` / ``error_body`` / ``error_headers``: answer chat completions, responses and
      embeddings with this HTTP error (``error_headers={"retry-after": "7"}`` for a rate limit);
    - ``delay_s``: wait before answering (to provoke timeouts);
    - ``moderation_triggers``: word → {category: score}; texts containing the word flag it,
      and so do images whose URL contains it (for the categories judged for images);
    - ``moderation_status`` / ``moderation_delay_s``: make the moderation endpoint fail.

    ``/v1/embeddings`` answers with deterministic vectors (see
    :func:`guard.offline.offline_embeddings`).

    Files and batches: ``files`` (id → :class:`StoredFile`) holds what was uploaded exactly
    as received; ``batches`` (id → batch object). A batch is ``validating`` when created and
    ``completed`` from its first retrieval on, with an output file whose lines answer each
    line of the input by its url: chat with ``reply``, responses with ``response_reply``,
    embeddings with offline vectors (other urls go to an error file).

    Streaming (``stream: true``, chat or responses): the reply is sent as chunks (or
    text deltas) of ``stream_chunk_chars``
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
        response_reply: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
        moderation_triggers: Mapping[str, Mapping[str, float]] | None = None,
        port: int = 0,
    ) -> None:
        self.reply = reply or offline_reply
        self.response_reply = response_reply or offline_response
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
        self.stream_events: list[dict[str, Any]] | None = None
        """Exact Responses events to stream instead of the reply's."""
        self.requests: list[ReceivedRequest] = []
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        super().__init__(keep=100_000)
        self._server = LoopbackServer(self, port=port)

    def routes(self, prefix: str) -> list[Route]:
        return [*super().routes(prefix),
                Route(f"{prefix}/moderations", self.moderations, methods=["POST"]),
                Route(f"{prefix}/files", self.upload_file, methods=["POST"]),
                Route(f"{prefix}/files/{{file_id}}", self.file_object, methods=["GET", "DELETE"]),
                Route(f"{prefix}/files/{{file_id}}/content", self.file_content, methods=["GET"]),
                Route(f"{prefix}/batches", self.create_batch, methods=["POST"]),
                Route(f"{prefix}/batches", self.list_batches, methods=["GET"]),
                Route(f"{prefix}/batches/{{batch_id}}", self.retrieve_batch, methods=["GET"])]

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

    async def _failure(self) -> Response | None:
        """The configured delay, then the configured error (``None``: answer normally)."""
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return JSONResponse(self.error_body or {"error": {
                "message": "fake upstream failure", "type": "server_error", "param": None,
                "code": None}}, status_code=self.status, headers=self.error_headers)
        return None

    async def responses(self, request: Request) -> Response:
        body = await self.record(request)
        failure = await self._failure()
        if failure is not None:
            return failure
        if not isinstance(body, dict) or not isinstance(body.get("input"), str | list):
            return openai_error(400, "'input' is required.")
        reply = self.response_reply(body)
        if body.get("stream") is True:
            events = self.stream_events or response_events(
                reply, chunk_chars=self.stream_chunk_chars)
            return StreamingResponse(self._send(typed_sse_lines(events)),
                                     media_type="text/event-stream")
        return JSONResponse(reply)

    async def embeddings(self, request: Request) -> Response:
        body = await self.record(request)
        failure = await self._failure()
        if failure is not None:
            return failure
        problem = embeddings_problem(body)
        if problem is not None:
            return openai_error(400, problem)
        return JSONResponse(offline_embeddings(body))

    async def chat_completions(self, request: Request) -> Response:
        body = await self.record(request)
        failure = await self._failure()
        if failure is not None:
            return failure
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
        async for event in self._send(sse_lines(chunks)):
            yield event

    async def _send(self, lines: list[bytes]) -> AsyncIterator[bytes]:
        """Stream ``lines`` (or ``raw_stream``) with the configured delays and breaks."""
        self.stream_cancelled = self.stream_finished = False
        events = self.raw_stream if self.raw_stream is not None else lines
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
            part = item if isinstance(item, dict) else {}
            is_image = part.get("type") == "image_url"
            # An image "shows" the trigger words in its URL (only image categories count).
            image: dict[str, Any] = part.get("image_url") or {} if is_image else {}
            text = item if isinstance(item, str) else str(
                image.get("url", "") if is_image else part.get("text", ""))
            scores = {c: 0.0001 for c in _CATEGORIES}
            for word, flagged in self.moderation_triggers.items():
                if word in text.lower():
                    for category, score in flagged.items():
                        if not is_image or category in _IMAGE_CATEGORIES:
                            scores[category] = max(scores[category], score)
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

    # -- files and batches ----------------------------------------------------------------

    def _store(self, filename: str, purpose: str, content: bytes) -> StoredFile:
        stored = StoredFile(f"file-fake{next(self._ids):06d}", filename, purpose, content,
                            int(time.time()))
        self.files[stored.id] = stored
        return stored

    async def upload_file(self, request: Request) -> Response:
        async with request.form() as form:
            upload, purpose = form.get("file"), form.get("purpose")
            if upload is None or isinstance(upload, str) or not isinstance(purpose, str):
                return openai_error(400, "'file' and 'purpose' are required.")
            content = await upload.read()
            stored = self._store(upload.filename or "upload", purpose, content)
        self.requests.append(ReceivedRequest(
            request.method, request.url.path,
            {k.lower(): v for k, v in request.headers.items()},
            {"purpose": purpose, "filename": stored.filename,
             "content": content.decode("utf-8", "replace")}))
        return JSONResponse(stored.to_json())

    async def file_object(self, request: Request) -> Response:
        await self.record(request)
        stored = self.files.get(request.path_params["file_id"])
        if stored is None:
            return openai_error(404, "No such file.")
        if request.method == "DELETE":
            del self.files[stored.id]
            return JSONResponse({"id": stored.id, "object": "file", "deleted": True})
        return JSONResponse(stored.to_json())

    async def file_content(self, request: Request) -> Response:
        await self.record(request)
        stored = self.files.get(request.path_params["file_id"])
        if stored is None:
            return openai_error(404, "No such file.")
        return Response(stored.content, media_type="application/octet-stream")

    async def create_batch(self, request: Request) -> Response:
        body = await self.record(request)
        if not isinstance(body, dict) or body.get("input_file_id") not in self.files:
            return openai_error(400, "'input_file_id' must name an uploaded file.")
        batch_id = f"batch_fake{next(self._ids):06d}"
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body.get("endpoint"),
            "errors": None, "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window", "24h"), "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": int(time.time()),
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata")}
        return JSONResponse(self.batches[batch_id])

    async def list_batches(self, request: Request) -> Response:
        await self.record(request)
        return JSONResponse({"object": "list", "data": list(self.batches.values()),
                             "has_more": False})

    async def retrieve_batch(self, request: Request) -> Response:
        await self.record(request)
        batch = self.batches.get(request.path_params["batch_id"])
        if batch is None:
            return openai_error(404, "No such batch.")
        if batch["status"] == "validating":
            self._run_batch(batch)
        return JSONResponse(batch)

    @property
    def _batch_answers(self) -> dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]]:
        """How a batch answers a line, by its url (the switches as they are when it runs)."""
        return {"/v1/chat/completions": self.reply, "/v1/responses": self.response_reply,
                "/v1/embeddings": offline_embeddings}

    def _run_batch(self, batch: dict[str, Any]) -> None:
        """Answer every line of the input file, as the Batch API would hours later."""
        output: list[str] = []
        errors: list[str] = []
        lines = self.files[batch["input_file_id"]].content.decode().splitlines()
        answers = self._batch_answers
        for n, line in enumerate(filter(str.strip, lines), start=1):
            item = json.loads(line)
            answer = answers.get(item.get("url"))
            if answer is not None:
                response = {"status_code": 200, "request_id": f"req_fake{n}",
                            "body": answer(item["body"])}
                output.append(json.dumps({"id": f"batch_req_{n}", "custom_id": item["custom_id"],
                                          "response": response, "error": None}))
            else:
                response = {"status_code": 400, "request_id": f"req_fake{n}", "body": {
                    "error": {"message": "unsupported url", "type": "invalid_request_error",
                              "param": None, "code": None}}}
                errors.append(json.dumps({"id": f"batch_req_{n}", "custom_id": item["custom_id"],
                                          "response": response, "error": None}))
        batch["output_file_id"] = self._store(
            "batch_output.jsonl", "batch_output", "".join(f"{x}\n" for x in output).encode()).id
        if errors:
            batch["error_file_id"] = self._store(
                "batch_errors.jsonl", "batch_output", "".join(f"{x}\n" for x in errors).encode()).id
        batch["status"] = "completed"
        batch["completed_at"] = int(time.time())
        batch["request_counts"] = {"total": len(output) + len(errors),
                                   "completed": len(output), "failed": len(errors)}

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeUpstream:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

