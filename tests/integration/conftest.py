"""Fixtures for integration tests: a fake upstream and the proxy in front of it, on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from guard import Guard, MemorySink
from guard.proxy import create_app
from guard.testing import FakeUpstream, LoopbackServer
from tests.conftest import GuardFactory

ProxyFactory = Callable[..., tuple[str, Guard, MemorySink]]
ClientFactory = Callable[[str], openai.OpenAI]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def proxy(make_guard: GuardFactory, upstream: FakeUpstream) -> Iterator[ProxyFactory]:
    """``proxy(policy_yaml=None, settings=None, **create_app_kwargs) -> (base_url, guard, sink)``.

    Moderation goes to the fake upstream's ``/moderations``; ``settings`` are more guard
    settings (``{"max_text_chars": 1000}``), over those defaults. The server runs its
    lifespan, so the forwarder's connections close with it.
    """
    servers: list[LoopbackServer] = []

    def start(yaml_text: str | None = None, settings: dict[str, Any] | None = None,
              **kwargs: Any) -> tuple[str, Guard, MemorySink]:
        guard, sink = make_guard(yaml_text, **{"moderation_provider": None,
                                               "upstream_url": upstream.base_url,
                                               **(settings or {})})
        kwargs.setdefault("upstream_url", upstream.base_url)
        server = LoopbackServer(create_app(guard, **kwargs), lifespan="on")
        server.start()
        servers.append(server)
        return f"{server.url}/v1", guard, sink

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def openai_client() -> Iterator[ClientFactory]:
    """``openai_client(base_url) -> openai.OpenAI``: the official SDK, no retries, a 30 s
    timeout; every client it made is closed when the test ends."""
    clients: list[openai.OpenAI] = []

    def make(base_url: str) -> openai.OpenAI:
        clients.append(openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=30))
        return clients[-1]

    yield make
    while clients:
        clients.pop().close()
