"""Shared pieces of the integration tests: waiting for audit records, PII checks, and an
upstream that fails on cue."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from guard import Guard, MemorySink
from guard.testing import FakeUpstream

PII = ["Maria Gonzalez", "maria.gonzalez@example.org", "(415) 555-0132"]
HISTORY = [
    {"role": "user", "content": "Hi, I'm Maria Gonzalez, mail maria.gonzalez@example.org."},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Call me at (415) 555-0132 or mail maria.gonzalez@example.org."},
]


class SdkUpstream(FakeUpstream):
    """:class:`FakeUpstream` that can fail on cue and also serves Azure-style paths.

    - ``fail_next``: answer that many chat requests with 500 (``retry-after-ms: 1``, so the
      SDK's retry comes at once), then behave normally again;
    - ``/openai/deployments/{name}/chat/completions`` is served like ``/v1/chat/completions``.

    Streams come in 5-character pieces, so placeholders arrive split across chunks.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_next = 0
        self.stream_chunk_chars = 5

    def __enter__(self) -> SdkUpstream:
        super().__enter__()
        return self

    def routes(self, prefix: str) -> list[Route]:
        return [*super().routes(prefix),
                Route("/openai/deployments/{name}/chat/completions", self.chat_completions,
                      methods=["POST"])]

    async def chat_completions(self, request: Request) -> Response:
        if self.fail_next <= 0:
            return await super().chat_completions(request)
        self.fail_next -= 1
        await self.record(request)
        return JSONResponse({"error": {"message": "fake upstream failure", "type": "server_error",
                                       "param": None, "code": None}},
                            status_code=500, headers={"retry-after-ms": "1"})


def reply_with(content: str) -> Any:
    """A ``reply`` for the fake upstream that always answers ``content``."""
    def reply(body: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": "chatcmpl-x", "object": "chat.completion", "created": 0,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}
    return reply


def records(guard: Guard, sink: MemorySink, at_least: int = 1) -> list[dict[str, Any]]:
    """The audit records so far, flushed; waits up to 5 s for ``at_least`` of them (a server
    writes a call's record just after its answer went out)."""
    deadline = time.monotonic() + 5
    while True:
        guard.audit_writer.flush()
        if len(sink.records) >= at_least or time.monotonic() > deadline:
            return sink.records
        time.sleep(0.01)


def assert_no_pii(*things: Any, values: list[str] = PII) -> None:
    dumped = json.dumps(things, default=str)
    for value in values:
        assert value not in dumped, f"{value!r} leaked"
