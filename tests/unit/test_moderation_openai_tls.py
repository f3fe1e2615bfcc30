"""The ``openai`` provider loads TLS settings once, at construction, never inside a check."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator

import httpx2
import pytest

from guard.moderation import Moderator, OpenAIModeration
from tests.support.fake_moderation import FakeModeration


@pytest.fixture
def fake() -> Iterator[FakeModeration]:
    with FakeModeration() as server:
        yield server


def test_checks_in_new_event_loops_build_no_tls_context(
        fake: FakeModeration, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = OpenAIModeration(base_url=fake.base_url)
    built: list[object] = []
    real = httpx2.create_ssl_context

    def counting(*args: object, **kwargs: object) -> object:
        verify = kwargs.get("verify", args[0] if args else True)
        if not isinstance(verify, ssl.SSLContext):  # a context handed in is not built again
            built.append(verify)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    # Both names a client could reach: the public one and the one AsyncClient calls.
    monkeypatch.setattr(httpx2, "create_ssl_context", counting)
    monkeypatch.setattr("httpx2._transports.default.create_ssl_context", counting)
    moderator = Moderator(provider, timeout_s=5.0)

    async def check_then_close() -> str:
        verdict = await moderator.check(["a harmless question"])
        await provider.aclose()
        return verdict.outcome

    # A sync adapter runs one event loop per call; each loop gets its own client.
    assert [asyncio.run(check_then_close()) for _ in range(2)] == ["pass", "pass"]
    assert len(fake.requests) == 2
    assert built == []
