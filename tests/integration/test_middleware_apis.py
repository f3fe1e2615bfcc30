"""GuardMiddleware guards the Responses and embeddings routes of an app that forwards them,
streamed or not, over real HTTP with the official SDK."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import openai
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from guard import GuardMiddleware
from guard.testing import FakeUpstream, LoopbackServer
from guard.upstream import Forwarder
from tests.conftest import GuardFactory
from tests.support.sdk import assert_no_pii, records

SAID = "I'm Maria Gonzalez, mail maria.gonzalez@example.org or call (415) 555-0132."


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        fake.stream_chunk_chars = 3
        yield fake


def test_an_apps_forwarded_responses_and_embeddings_routes_are_guarded(
        make_guard: GuardFactory, upstream: FakeUpstream) -> None:
    guard, sink = make_guard(moderation_provider=None, upstream_url=upstream.base_url)
    forwarder = Forwarder(upstream.base_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await forwarder.aclose()

    app = Starlette(routes=[Mount("/", GuardMiddleware(forwarder, guard=guard))], lifespan=lifespan)
    with LoopbackServer(app, lifespan="on") as server, openai.OpenAI(
            base_url=f"{server.url}/v1", api_key="k", max_retries=0) as client:
        answer = client.responses.create(model="gpt-4o-mini", input=SAID)
        events = list(client.responses.create(model="gpt-4o-mini", input=SAID, stream=True))
        client.embeddings.create(model="text-embedding-3-small", input=SAID)
    assert answer.output_text.endswith(SAID)
    assert "".join(e.delta for e in events
                   if e.type == "response.output_text.delta").endswith(SAID)
    sent = [r.body["input"] for r in upstream.requests if not r.path.endswith("/moderations")]
    assert sent == ["I'm <PERSON_1>, mail <EMAIL_ADDRESS_1> or call <PHONE_NUMBER_1>."] * 2 + [
        "I'm [PERSON], mail [EMAIL_ADDRESS] or call [PHONE_NUMBER]."]
    recs = records(guard, sink, at_least=3)
    assert [(r["route"], r["stream"]) for r in recs] == [
        ("/v1/responses", False), ("/v1/responses", True), ("/v1/embeddings", False)]
    assert_no_pii([r.body for r in upstream.requests], recs)
