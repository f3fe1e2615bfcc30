"""Routes of the review page and its JSON API (see the package docstring)."""

from __future__ import annotations

import hmac
import importlib.resources
from collections.abc import Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guard.audit.columns import flagged_categories, rule_hits
from guard.audit.store import AuditStore, Filters, StoredRecord
from guard.audit.timeparse import parse_when
from guard.errors import GuardError

_STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
           "index.html": "text/html; charset=utf-8"}
_DECISIONS = ("allow", "redact", "warn", "block")
MAX_LIMIT = 500

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    # The admin key may be in the page's URL: never send it on as a referrer.
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class _Guarded:
    """Pure ASGI: adds the security headers and, with a key, refuses API calls without it."""

    def __init__(self, app: ASGIApp, admin_key: str | None) -> None:
        self.app = app
        self.key = admin_key.encode() if admin_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        # The page and its assets hold no data; only the API needs the key. (The browser
        # loads the assets without the key, the page's script sends it with each API call.)
        needs_key = self.key is not None and str(scope.get("path", "")).startswith("/api/")
        if needs_key and not self._allowed(Request(scope)):
            response = JSONResponse({"error": "admin key required (Authorization: Bearer KEY "
                                              "or ?key=KEY)"}, status_code=401,
                                    headers={"www-authenticate": "Bearer"})
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _allowed(self, request: Request) -> bool:
        assert self.key is not None
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else request.query_params.get("key", "")
        return hmac.compare_digest(given.encode(), self.key)


def _static(name: str) -> bytes:
    return importlib.resources.files("guard.audit.web").joinpath("static", name).read_bytes()


def filters_from(params: Mapping[str, str]) -> Filters:
    """Filters from query parameters (the CLI's names); ``ValueError`` for a bad value."""
    decisions = tuple(d for d in params.get("decision", "").split(",") if d)
    unknown = [d for d in decisions if d not in _DECISIONS]
    if unknown:
        raise ValueError(f"unknown decision {unknown[0]!r}; use {', '.join(_DECISIONS)}")

    def when(name: str) -> str | None:
        value = params.get(name, "").strip()
        return parse_when(value) if value else None

    def text(name: str) -> str | None:
        return params.get(name, "").strip() or None

    return Filters(since=when("since"), until=when("until"), decisions=decisions,
                   principal=text("principal"), policy=text("policy"),
                   policy_sha=text("policy_sha"), rule=text("rule"), entity=text("entity"),
                   category=text("category"), model=text("model"), status=text("status"),
                   request_id=text("request_id"))


def summary(row: StoredRecord) -> dict[str, Any]:
    """What one table row shows (the page asks for the whole record on a click)."""
    r = row.record
    policy = r.get("policy") if isinstance(r.get("policy"), dict) else {}
    usage = r.get("usage") if isinstance(r.get("usage"), dict) else {}
    latency = r.get("latency_ms") if isinstance(r.get("latency_ms"), dict) else {}
    return {
        "id": row.id, "ts": r.get("ts"), "event": r.get("event"),
        "request_id": r.get("request_id"), "principal": r.get("principal"),
        "model": r.get("model"), "route": r.get("route"),
        "policy": (policy or {}).get("name"), "policy_sha256": (policy or {}).get("sha256"),
        "decision": r.get("decision"), "status": r.get("status"), "code": r.get("code"),
        "entities": r.get("input_entities") if isinstance(r.get("input_entities"), dict) else {},
        "categories": flagged_categories(r),
        "rules": [{"id": i, "action": a} for i, a in rule_hits(r)],
        "prompt_tokens": (usage or {}).get("prompt_tokens"),
        "completion_tokens": (usage or {}).get("completion_tokens"),
        "cost_usd": r.get("cost_usd"), "latency_ms": (latency or {}).get("total"),
        "stream": r.get("stream"),
    }


def create_review_app(sink: str, *, admin_key: str | None = None,
                      open_store: Callable[[str], AuditStore] | None = None) -> ASGIApp:
    """The review page over the store ``sink`` names; read-only.

    >>> app = create_review_app("sqlite:///guard-audit.db")   # doctest: +SKIP
    >>> uvicorn.run(app, port=8090)                            # doctest: +SKIP
    """
    if open_store is None:
        from guard.audit.urls import open_store as open_url

        def open_store(url: str) -> AuditStore:
            return open_url(url)

    opener = open_store
    static = {name: _static(name) for name in _STATIC}

    async def with_store(work: Callable[[AuditStore], Any]) -> Any:
        def run() -> Any:
            with opener(sink) as store:
                return work(store)

        return await run_in_threadpool(run)

    def bad_request(message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=400)

    async def page(request: Request) -> Response:
        return Response(static["index.html"], media_type=_STATIC["index.html"])

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static or name == "index.html":
            return Response("not found", status_code=404)
        return Response(static[name], media_type=_STATIC[name])

    async def records(request: Request) -> Response:
        try:
            filters = filters_from(request.query_params)
            limit = min(int(request.query_params.get("limit", "100")), MAX_LIMIT)
            before = request.query_params.get("before")
            before_id = int(before) if before else None
        except ValueError as exc:
            return bad_request(str(exc))

        def work(store: AuditStore) -> dict[str, Any]:
            rows = list(store.records(filters, limit=max(limit, 1), newest_first=True,
                                      before_id=before_id))
            return {"store": store.label, "total": store.count(filters),
                    "records": [summary(r) for r in rows],
                    "next_before": rows[-1].id if len(rows) == limit else None}

        return JSONResponse(await with_store(work))

    async def record(request: Request) -> Response:
        try:
            row_id = int(request.path_params["row_id"])
        except ValueError:
            return bad_request("record ids are numbers")
        found: StoredRecord | None = await with_store(lambda store: store.get(row_id))
        if found is None:
            return JSONResponse({"error": f"no record {row_id}"}, status_code=404)
        return JSONResponse({"id": found.id, "summary": summary(found), "record": found.record})

    async def chart(request: Request) -> Response:
        bucket = request.query_params.get("bucket", "hour")
        if bucket not in ("hour", "day"):
            return bad_request("bucket is hour or day")
        try:
            filters = filters_from(request.query_params)
        except ValueError as exc:
            return bad_request(str(exc))
        series = await with_store(lambda store: store.decisions_over_time(filters, bucket))
        return JSONResponse({"bucket": bucket, "series": series})

    async def stats(request: Request) -> Response:
        try:
            filters = filters_from(request.query_params)
        except ValueError as exc:
            return bad_request(str(exc))
        result = await with_store(lambda store: store.stats(filters))
        return JSONResponse(result.as_dict())

    async def store_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=503)

    app = Starlette(routes=[
        Route("/", page),
        Route("/static/{name}", asset),
        Route("/api/records", records),
        Route("/api/records/{row_id}", record),
        Route("/api/chart", chart),
        Route("/api/stats", stats),
    ], exception_handlers={GuardError: store_error})
    return _Guarded(app, admin_key)
