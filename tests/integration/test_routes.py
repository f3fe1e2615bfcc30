"""Which routes the proxy guards, passes through or refuses — over real HTTP."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx2
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from guard.errors import ConfigError
from guard.proxy import ProxyConfig
from guard.testing import FakeUpstream
from tests.conftest import GuardFactory
from tests.integration.conftest import ProxyFactory
from tests.integration.test_serve import GUARD
from tests.support.sdk import records


class FilesUpstream(FakeUpstream):
    """A fake upstream that also lists ``/v1/files`` (to see what passes through)."""

    def routes(self, prefix: str) -> list[Route]:
        return [*super().routes(prefix),
                Route(f"{prefix}/files", self.file_list, methods=["GET"])]

    async def file_list(self, request: Request) -> Response:
        await self.record(request)
        return JSONResponse({"object": "list", "data": []})


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/responses/resp_123"),        # a stored answer: unchecked output
    ("POST", "/v1/responses/resp_123/cancel"),
    ("POST", "/v1/uploads"),
    ("POST", "/v1/batchesx"),                 # not a batch route
    ("POST", "/v1/completions"),
    ("POST", "/v1/filesystem"),               # not under the /v1/files prefix
])
def test_routes_guard_does_not_handle_are_refused_with_an_openai_shaped_404(
        proxy: ProxyFactory, upstream: FakeUpstream, method: str, path: str) -> None:
    base_url, guard, sink = proxy(passthrough=["/v1/files/"])
    response = httpx2.request(method, base_url.removesuffix("/v1") + path, json={})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "guard.unknown_route" and error["type"] == "invalid_request_error"
    assert "POST /v1/chat/completions, /v1/responses, /v1/embeddings" in error["message"]
    assert "GUARD_PASSTHROUGH" in error["message"] and "/v1/files" in error["message"]
    assert not upstream.requests
    guard.audit_writer.flush()
    assert sink.records == []


def test_configured_pass_through_prefixes_are_forwarded_unguarded(make_guard: GuardFactory) -> None:
    from guard.proxy import create_app
    from guard.testing import LoopbackServer

    with FilesUpstream() as upstream:
        guard, sink = make_guard(upstream_url=upstream.base_url)
        app = create_app(guard, upstream_url=upstream.base_url, passthrough=["/v1/files"])
        with LoopbackServer(app, lifespan="on") as server:
            listed = httpx2.get(f"{server.url}/v1/files?purpose=batch",
                                headers={"authorization": "Bearer k"})
            batches = httpx2.post(f"{server.url}/v1/batches", json={})
    assert listed.status_code == 200 and listed.json() == {"object": "list", "data": []}
    assert [(r.method, r.path) for r in upstream.requests] == [("GET", "/v1/files")]
    # /v1/batches is a guarded batch route, never passed through unchecked: without a
    # batch key this proxy cannot check batch files, so it says so.
    assert batches.status_code == 503
    assert batches.json()["error"]["code"] == "guard.batch_key_missing"
    assert records(guard, sink, at_least=0) == []


@pytest.mark.parametrize("prefix", ["/v1", "/v1/", "files", "/other/x"])
def test_a_pass_through_prefix_that_is_too_broad_or_not_a_path_fails_at_start(prefix: str) -> None:
    with pytest.raises(ConfigError, match="must be a path under /v1/"):
        ProxyConfig(upstream_url="http://127.0.0.1:9/v1", passthrough=(prefix,))


def test_guard_serve_refuses_a_pass_through_prefix_that_would_unguard_everything(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "GUARD_PASSTHROUGH")}
    result = subprocess.run([GUARD, "serve", "--port", "9", "--passthrough", "/v1/files",
                             "--passthrough", "/v1"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "'/v1' must be a path under /v1/" in result.stderr
