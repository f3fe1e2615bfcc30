"""A fake OpenAI moderation endpoint on loopback, for tests that need real HTTP.

``FakeModeration`` serves ``POST /v1/moderations`` from a uvicorn server in a background
thread on 127.0.0.1 (a free port). It records every request (path, headers, JSON body) and
answers in the shape of ``CreateModerationResponse``: a category scores high when the text
contains one of its trigger words. Between requests a test can make it fail: ``status``
(an HTTP error), ``delay_s`` (slower than the client's timeout), ``raw_body`` (not JSON, or
the wrong shape), ``slow_body_s`` (headers at once, then the body a byte at a time over that
long). ``closed_port()`` gives a port where connections are refused.

Example::

    with FakeModeration(triggers={"stab": {"violence": 0.93}}) as fake:
        provider = OpenAIModeration(base_url=fake.base_url, api_key="sk-test")
        ...
        assert fake.requests[-1].headers["authorization"] == "Bearer sk-test"
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from guard.moderation import CATEGORIES

IMAGE_CATEGORIES: tuple[str, ...] = (
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "violence",
    "violence/graphic",
)
"""The categories ``omni-moderation-latest`` evaluates for images (the rest are text only)."""

DEFAULT_TRIGGERS: Mapping[str, Mapping[str, float]] = {
    "kill": {"violence": 0.95},
    "hopeless": {"self-harm/intent": 0.3, "self-harm": 0.35},
}
BASELINE = 0.0001
"""The score of a category nothing triggered."""


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    """Lower-case header names."""
    body: Any
    """The parsed JSON body (``None`` if it was not JSON)."""


@dataclass
class FakeModeration:
    """The fake endpoint; use it as a context manager, or call :meth:`start`/:meth:`stop`."""

    triggers: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: dict(DEFAULT_TRIGGERS)
    )
    image_scores: dict[str, float] = field(default_factory=dict)
    """Scores given to image inputs (category -> score); image categories only."""
    status: int = 200
    delay_s: float = 0.0
    slow_body_s: float = 0.0
    raw_body: bytes | None = None
    error_body: Any = None
    """JSON sent with a non-200 ``status``; defaults to an OpenAI-style error."""
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeModeration:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        app = Starlette(routes=[Route("/v1/moderations", self._moderations, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", log_level="error", lifespan="off", ws="none",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake moderation server did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        self._stopping.set()  # releases handlers that are still sleeping
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()

    def reset(self) -> None:
        """Back to healthy answers with no recorded requests (triggers are kept)."""
        self.image_scores = {}
        self.status = 200
        self.delay_s = 0.0
        self.slow_body_s = 0.0
        self.raw_body = None
        self.error_body = None
        self.requests.clear()

    # --- the endpoint ------------------------------------------------------------------

    async def _moderations(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.requests.append(RecordedRequest(
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        ))
        deadline = time.monotonic() + self.delay_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            await asyncio.sleep(0.01)
        if self.status != 200:
            error = self.error_body or {"error": {
                "message": "The server had an error while processing your request.",
                "type": "server_error", "code": None, "param": None,
            }}
            return JSONResponse(error, status_code=self.status)
        if self.raw_body is not None:
            return Response(self.raw_body, media_type="application/json")
        if self.slow_body_s:
            return StreamingResponse(self._trickle(json.dumps(self.respond(body)).encode()),
                                     media_type="application/json")
        return JSONResponse(self.respond(body))

    async def _trickle(self, payload: bytes) -> AsyncIterator[bytes]:
        pause = self.slow_body_s / max(len(payload), 1)
        for i in range(len(payload)):
            if self._stopping.is_set():
                return
            yield payload[i:i + 1]
            await asyncio.sleep(pause)

    def respond(self, body: Any) -> dict[str, Any]:
        """The ``CreateModerationResponse`` for a request body.

        A list of strings gets one result per string (as the API does); a multi-modal list
        gets one result for all its parts, with ``category_applied_input_types`` naming the
        input types each category covered.
        """
        inputs = body["input"]
        if isinstance(inputs, str):
            inputs = [inputs]
        if all(isinstance(i, str) for i in inputs):
            results = [self._result([text], []) for text in inputs]
        else:
            texts = [p["text"] for p in inputs if p["type"] == "text"]
            images = [p["image_url"]["url"] for p in inputs if p["type"] == "image_url"]
            results = [self._result(texts, images)]
        return {"id": "modr-fake", "model": body.get("model"), "results": results}

    def _result(self, texts: list[str], images: list[str]) -> dict[str, Any]:
        scores = dict.fromkeys(CATEGORIES, BASELINE)
        for text in texts:
            for word, hits in self.triggers.items():
                if word in text.lower():
                    for category, score in hits.items():
                        scores[category] = max(scores[category], score)
        if images:
            for category, score in self.image_scores.items():
                scores[category] = max(scores[category], score)
        applied: dict[str, list[str]] = {}
        for category in CATEGORIES:
            kinds = ["text"] if texts else []
            if images and category in IMAGE_CATEGORIES:
                kinds.append("image")
            applied[category] = kinds
        return {
            "flagged": any(s >= 0.5 for s in scores.values()),
            "categories": {c: s >= 0.5 for c, s in scores.items()},
            "category_scores": scores,
            "category_applied_input_types": applied,
        }


def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
