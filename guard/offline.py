"""The built-in offline upstream: an OpenAI-compatible model stand-in with no network.

``guard serve`` uses it when no API key and no upstream are configured, so a fresh clone can
run its main job without an account. Its answers are deterministic and show what the model
received — placeholders included — so redaction on the way in and restoration on the way
out are visible to the person trying Guard.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

OFFLINE_MODELS = ("gpt-4o-mini", "gpt-4o")


@dataclass(frozen=True)
class ReceivedRequest:
    """What the upstream received: method, path, lower-cased headers and the JSON body."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content
                        if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def offline_reply(body: Mapping[str, Any]) -> dict[str, Any]:
    """A deterministic chat completion that shows what the model was sent.

    With ``tools`` in the request, the first function is called with the last user message
    as its first string argument, so tool-call handling is visible too.
    """
    messages = body.get("messages") or []
    last_user = next((m for m in reversed(messages)
                      if isinstance(m, dict) and m.get("role") == "user"), {})
    heard = _text_of(last_user.get("content"))
    prompt_tokens = sum(_tokens(_text_of(m.get("content"))) for m in messages if isinstance(m, dict))
    message: dict[str, Any] = {"role": "assistant", "refusal": None}
    finish = "stop"
    tools = body.get("tools") or []
    function = next((t.get("function") for t in tools
                     if isinstance(t, dict) and isinstance(t.get("function"), dict)), None)
    if function is not None:
        properties = (function.get("parameters") or {}).get("properties") or {}
        first = next((name for name, spec in properties.items()
                      if isinstance(spec, dict) and spec.get("type") == "string"), "text")
        message["content"] = None
        message["tool_calls"] = [{
            "id": "call_offline_1", "type": "function",
            "function": {"name": function.get("name", "tool"),
                         "arguments": json.dumps({first: heard})},
        }]
        finish = "tool_calls"
        completion = heard
    else:
        completion = (f"(offline model) I received {len(messages)} message(s). "
                      f"Your last message was: {heard}")
        message["content"] = completion
    return {
        "id": "chatcmpl-offline-" + hashlib.sha256(heard.encode()).hexdigest()[:16],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or "gpt-4o-mini",
        "system_fingerprint": "guard-offline",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": _tokens(completion),
                  "total_tokens": prompt_tokens + _tokens(completion)},
    }


def stream_chunks(completion: Mapping[str, Any], *, chunk_chars: int = 4,
                  include_usage: bool = False) -> list[dict[str, Any]]:
    """A finished completion cut into ``chat.completion.chunk`` objects, as OpenAI streams it:
    a role chunk, content (or tool-call argument) pieces, a finish chunk, then usage."""
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")
            if k in completion}
    base["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                     "logprobs": None}]}

    choice = completion["choices"][0]
    message = choice["message"]
    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    content = message.get("content") or ""
    for i in range(0, len(content), max(chunk_chars, 1)):
        chunks.append(chunk({"content": content[i:i + chunk_chars]}))
    for k, call in enumerate(message.get("tool_calls") or []):
        arguments = call["function"]["arguments"]
        chunks.append(chunk({"tool_calls": [{"index": k, "id": call["id"], "type": "function",
                                             "function": {"name": call["function"]["name"],
                                                          "arguments": ""}}]}))
        for i in range(0, len(arguments), max(chunk_chars, 1)):
            chunks.append(chunk({"tool_calls": [{"index": k, "function": {
                "arguments": arguments[i:i + chunk_chars]}}]}))
    chunks.append(chunk({}, choice.get("finish_reason") or "stop"))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": completion.get("usage")})
    return chunks


def sse_lines(chunks: list[dict[str, Any]]) -> list[bytes]:
    return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]


def wants_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _responses_heard(body: Mapping[str, Any]) -> tuple[str, int]:
    """The last user text of a Responses request, and how many input items it has."""
    data = body.get("input")
    if isinstance(data, str):
        return data, 1
    items = data if isinstance(data, list) else []
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            return _text_of(item.get("content")), len(items)
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            return str(item.get("output") or ""), len(items)
    return "", len(items)


def offline_response(body: Mapping[str, Any]) -> dict[str, Any]:
    """A deterministic Responses API ``response`` that shows what the model was sent.

    With function ``tools``, the first function is called with the last user text as its
    first string argument (as :func:`offline_reply` does for chat).
    """
    heard, n_items = _responses_heard(body)
    tools = body.get("tools") or []
    function = next((t for t in tools if isinstance(t, dict) and t.get("type") == "function"),
                    None)
    item: dict[str, Any]
    if function is not None:
        properties = (function.get("parameters") or {}).get("properties") or {}
        first = next((name for name, spec in properties.items()
                      if isinstance(spec, dict) and spec.get("type") == "string"), "text")
        item = {"id": "fc_offline_1", "type": "function_call", "status": "completed",
                "call_id": "call_offline_1", "name": function.get("name", "tool"),
                "arguments": json.dumps({first: heard})}
        completion = heard
    else:
        completion = (f"(offline model) I received {n_items} input item(s). "
                      f"Your last message was: {heard}")
        item = {"id": "msg_offline_1", "type": "message", "status": "completed",
                "role": "assistant", "content": [
                    {"type": "output_text", "text": completion, "annotations": []}]}
    prompt_tokens = _tokens(heard) + _tokens(str(body.get("instructions") or ""))
    return {
        "id": "resp_offline_" + hashlib.sha256(heard.encode()).hexdigest()[:16],
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": body.get("model") or "gpt-4o-mini",
        "instructions": body.get("instructions"),
        "output": [item],
        "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": tools,
        "text": {"format": {"type": "text"}},
        "error": None,
        "incomplete_details": None,
        "metadata": {},
        "usage": {"input_tokens": prompt_tokens, "output_tokens": _tokens(completion),
                  "total_tokens": prompt_tokens + _tokens(completion),
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0}},
    }


def response_events(response: Mapping[str, Any], *, chunk_chars: int = 4) -> list[dict[str, Any]]:
    """A finished ``response`` as the typed events OpenAI streams it: created, in_progress,
    per output item (added, text or argument deltas, done events), completed."""
    events: list[dict[str, Any]] = []

    def add(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    step = max(chunk_chars, 1)
    start = {**response, "status": "in_progress", "output": [], "usage": None}
    add("response.created", response=start)
    add("response.in_progress", response=start)
    for index, item in enumerate(response.get("output") or []):
        item_id = item.get("id")
        if item.get("type") == "function_call":
            add("response.output_item.added", output_index=index,
                item={**item, "arguments": "", "status": "in_progress"})
            arguments = item.get("arguments") or ""
            for i in range(0, len(arguments), step):
                add("response.function_call_arguments.delta", item_id=item_id,
                    output_index=index, delta=arguments[i:i + step])
            add("response.function_call_arguments.done", item_id=item_id, output_index=index,
                arguments=arguments)
        else:
            add("response.output_item.added", output_index=index,
                item={**item, "content": [], "status": "in_progress"})
            for j, part in enumerate(item.get("content") or []):
                text = part.get("text") or ""
                add("response.content_part.added", item_id=item_id, output_index=index,
                    content_index=j, part={**part, "text": ""})
                for i in range(0, len(text), step):
                    add("response.output_text.delta", item_id=item_id, output_index=index,
                        content_index=j, delta=text[i:i + step], logprobs=[])
                add("response.output_text.done", item_id=item_id, output_index=index,
                    content_index=j, text=text, logprobs=[])
                add("response.content_part.done", item_id=item_id, output_index=index,
                    content_index=j, part=part)
        add("response.output_item.done", output_index=index, item=item)
    add("response.completed", response=response)
    return events


def typed_sse_lines(events: list[dict[str, Any]]) -> list[bytes]:
    """Responses events on the wire: ``event:`` and ``data:`` lines, no ``[DONE]``."""
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


MAX_DIMENSIONS = 3072
"""The most ``dimensions`` an OpenAI embeddings model gives (``text-embedding-3-large``)."""


def embeddings_problem(body: Any) -> str | None:
    """Why the API would refuse this embeddings request (400), or ``None``.

    ``dimensions`` is bounded as the models bound it: a request for millions of dimensions
    must not make the offline model build a vector that size.
    """
    if not isinstance(body, dict) or not isinstance(body.get("input"), str | list):
        return "'input' is required."
    asked = body.get("dimensions")
    if asked is not None and (not isinstance(asked, int) or isinstance(asked, bool)
                              or not 1 <= asked <= MAX_DIMENSIONS):
        return f"'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}."
    return None


def offline_embeddings(body: Mapping[str, Any]) -> dict[str, Any]:
    """Deterministic vectors (from a hash of each text) in the embeddings response shape;
    ``encoding_format: base64`` gives little-endian float32 as the API does."""
    data = body.get("input")
    texts = [data] if isinstance(data, str) else [str(x) for x in data or []]
    asked = body.get("dimensions")
    dimensions = asked if isinstance(asked, int) and 0 < asked <= MAX_DIMENSIONS else 8
    items = []
    for index, text in enumerate(texts):
        digest = hashlib.sha256(text.encode()).digest() * (dimensions // 32 + 1)
        vector = [round(b / 255 - 0.5, 6) for b in digest[:dimensions]]
        embedding: Any = vector
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        items.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(_tokens(t) for t in texts)
    return {"object": "list", "data": items, "model": body.get("model") or "text-embedding-3-small",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def openai_error(status: int, message: str, code: str | None = None,
                 kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}},
                        status_code=status)


class OfflineUpstream:
    """ASGI app answering ``/v1/chat/completions``, ``/v1/responses`` (both streaming or
    not), ``/v1/embeddings`` and ``/v1/models`` offline.

    It remembers the last ``keep`` requests it received (for ``guard demo``), in memory only.
    """

    def __init__(self, *, keep: int = 50, prefix: str = "/v1") -> None:
        self.received: deque[ReceivedRequest] = deque(maxlen=keep)
        self.app = Starlette(routes=self.routes(prefix))

    def routes(self, prefix: str) -> list[Route]:
        return [
            Route(f"{prefix}/chat/completions", self.chat_completions, methods=["POST"]),
            Route(f"{prefix}/responses", self.responses, methods=["POST"]),
            Route(f"{prefix}/embeddings", self.embeddings, methods=["POST"]),
            Route(f"{prefix}/models", self.models, methods=["GET"]),
        ]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    async def record(self, request: Request) -> Any:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.received.append(ReceivedRequest(request.method, request.url.path,
                                             {k.lower(): v for k, v in request.headers.items()},
                                             body))
        return body

    async def chat_completions(self, request: Request) -> Response:
        body = await self.record(request)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return openai_error(400, "'messages' is required.")
        reply = offline_reply(body)
        if body.get("stream") is True:
            events = sse_lines(stream_chunks(reply, include_usage=wants_usage(body)))
            return Response(b"".join(events), media_type="text/event-stream")
        return JSONResponse(reply)

    async def responses(self, request: Request) -> Response:
        body = await self.record(request)
        if not isinstance(body, dict) or not (isinstance(body.get("input"), str | list)
                                              or body.get("instructions")):
            return openai_error(400, "'input' is required.")
        reply = offline_response(body)
        if body.get("stream") is True:
            events = typed_sse_lines(response_events(reply))
            return Response(b"".join(events), media_type="text/event-stream")
        return JSONResponse(reply)

    async def embeddings(self, request: Request) -> Response:
        body = await self.record(request)
        problem = embeddings_problem(body)
        if problem is not None:
            return openai_error(400, problem)
        return JSONResponse(offline_embeddings(body))

    async def models(self, request: Request) -> Response:
        await self.record(request)
        return JSONResponse({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "guard-offline"}
            for m in OFFLINE_MODELS]})
