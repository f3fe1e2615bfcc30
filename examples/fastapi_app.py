"""A FastAPI app whose own /v1/chat/completions route forwards to OpenAI, guarded by one line.

Run it (uses OPENAI_API_KEY and, if set, OPENAI_BASE_URL):

    pip install fastapi
    uvicorn examples.fastapi_app:app --port 8000

then point an OpenAI SDK at http://127.0.0.1:8000/v1.
"""

from __future__ import annotations

import os
from typing import Any

import httpx2
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from guard import Guard, GuardMiddleware
from guard.ops import GuardMetrics
from guard.ops.health import Readiness


def build_app(guard: Guard, *, upstream_url: str, api_key: str) -> FastAPI:
    app = FastAPI(title="support-bot")
    app.add_middleware(GuardMiddleware, guard=guard)  # ← the one line

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        # The body here is already redacted; the answer is checked and restored on its way out.
        body: dict[str, Any] = await request.json()
        async with httpx2.AsyncClient(timeout=60) as client:
            upstream = await client.post(f"{upstream_url}/chat/completions", json=body,
                                         headers={"authorization": f"Bearer {api_key}"})
        return JSONResponse(upstream.json(), status_code=upstream.status_code)

    @app.get("/status")
    async def status() -> dict[str, str]:
        return {"status": "ok"}  # not an OpenAI route: passes through untouched

    # Operations: Prometheus metrics of every guarded call, and a readiness probe.
    app.add_route("/metrics", GuardMetrics().attach(guard).asgi_app())
    readiness = Readiness(guard)

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready, body = readiness.check()
        return JSONResponse(body, status_code=200 if ready else 503)

    return app


def __getattr__(name: str) -> Any:
    # `uvicorn examples.fastapi_app:app` builds the app on first use, not at import.
    if name == "app":
        return build_app(Guard.from_policy("default"),
                         upstream_url=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
                         api_key=os.environ["OPENAI_API_KEY"])
    raise AttributeError(name)
