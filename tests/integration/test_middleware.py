"""GuardMiddleware in a real FastAPI app (the shipped example), over real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx2
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from examples.fastapi_app import build_app
from guard import GuardMiddleware
from guard.testing import FakeUpstream, LoopbackServer
from tests.conftest import GuardFactory


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


def test_example_fastapi_app_redacts_before_its_route_and_restores_after(
        make_guard: GuardFactory, upstream: FakeUpstream) -> None:
    guard, sink = make_guard(moderation_provider=None, upstream_url=upstream.base_url)
    app = build_app(guard, upstream_url=upstream.base_url, api_key="sk-app")
    with LoopbackServer(app) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "user", "content": "I'm Maria Gonzalez (maria.gonzalez@example.org)."}])
        status = httpx2.get(f"{server.url}/status").json()
    sent = upstream.chat_requests[-1].body["messages"][0]["content"]
    assert sent == "I'm <PERSON_1> (<EMAIL_ADDRESS_1>)."
    assert (completion.choices[0].message.content or "").endswith(
        "I'm Maria Gonzalez (maria.gonzalez@example.org).")
    assert status == {"status": "ok"}
    guard.close()
    (record,) = sink.records
    assert record["route"] == "/v1/chat/completions" and record["decision"] == "redact"


def test_constructor_form_works_like_add_middleware(
        make_guard: GuardFactory, upstream: FakeUpstream) -> None:
    guard, _ = make_guard(moderation_provider=None, upstream_url=upstream.base_url)

    async def echo(request: Request) -> Response:
        body = await request.json()
        return Response(json.dumps({"choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": body["messages"][0]["content"]}}]}),
            media_type="application/json")

    app = GuardMiddleware(Starlette(routes=[Route("/v1/chat/completions", echo, methods=["POST"])]),
                          guard=guard)
    with LoopbackServer(app) as server:
        response = httpx2.post(f"{server.url}/v1/chat/completions", json={
            "model": "m", "messages": [{"role": "user", "content": "mail ann@example.com"}]})
    assert response.json()["choices"][0]["message"]["content"] == "mail ann@example.com"
    assert response.headers["x-guard-decision"] == "redact"
    assert int(response.headers["content-length"]) == len(response.content)


def test_unguarded_routes_keep_their_bytes_and_headers(make_guard: GuardFactory) -> None:
    guard, sink = make_guard()

    async def upload(request: Request) -> Response:
        data = await request.body()
        return Response(data[::-1], media_type="application/octet-stream",
                        headers={"x-custom": "1", "content-disposition": "inline"})

    async def page(request: Request) -> Response:
        return Response("<p>hi ann@example.com</p>", media_type="text/html")

    routes = [Route("/upload", upload, methods=["POST"]), Route("/page", page),
              Route("/v1/chat/completions", page)]  # GET on a guarded path is not guarded
    plain, guarded = Starlette(routes=routes), GuardMiddleware(Starlette(routes=routes), guard=guard)
    payload = bytes(range(256)) * 100
    seen = []
    for app in (plain, guarded):
        with LoopbackServer(app) as server:
            up = httpx2.post(f"{server.url}/upload", content=payload)
            got = httpx2.get(f"{server.url}/page")
            get_guarded_path = httpx2.get(f"{server.url}/v1/chat/completions")
        seen.append([(r.status_code, r.content, sorted((k, v) for k, v in r.headers.items()
                                                       if k != "date"))
                     for r in (up, got, get_guarded_path)])
    assert seen[0] == seen[1]
    guard.close()
    assert sink.records == [], "unguarded routes write no audit records"


def test_an_apps_own_streaming_route_is_guarded(make_guard: GuardFactory) -> None:
    guard, sink = make_guard()
    key = "sk-proj-" + "Ab1" * 10

    async def stream_route(request: Request) -> StreamingResponse:
        body = await request.json()
        said = body["messages"][0]["content"]  # what the app (and its model) received

        async def events() -> AsyncIterator[bytes]:
            for piece in ["Noted <EMAIL_", "ADDRESS_1>, your key is ", key[:10], key[10:], "."]:
                chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0,
                         "model": "m", "choices": [{"index": 0, "delta": {"content": piece},
                                                    "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            done = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode()

        assert "@" not in said
        return StreamingResponse(events(), media_type="text/event-stream")

    app = GuardMiddleware(Starlette(routes=[Route("/v1/chat/completions", stream_route,
                                                  methods=["POST"])]), guard=guard)
    with LoopbackServer(app) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0)
        stream = client.chat.completions.create(model="m", stream=True, messages=[
            {"role": "user", "content": "I'm ann.lee@example.com"}])
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Noted ann.lee@example.com, your key is [REDACTED:no-api-keys]."
    guard.close()
    (record,) = sink.records
    assert record["stream"] is True and record["output_rules"] == [
        {"id": "no-api-keys", "action": "redact"}]
