"""``on_error: local``: a hosted-moderation outage falls back to the offline model, and the
audit record says so — an outage is never recorded as a normal pass.

Real HTTP to a fake moderation endpoint on loopback that answers 500.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from guard.moderation import CATEGORIES, Moderator, ProviderScores
from guard.moderation.moderator import FallbackVerdict
from tests.conftest import GuardFactory
from tests.support.bodies import answer, chat
from tests.support.fake_moderation import FakeModeration


def policy(on_error: str = "local", output: bool = False) -> str:
    text = ("version: 1\nname: mod\nmoderation:\n"
            f"  input: {{provider: openai, on_error: {on_error}, timeout_s: 1,"
            " thresholds: {default: 0.5}}\n")
    if output:
        text += f"  output: {{provider: openai, on_error: {on_error}, thresholds: {{default: 0.5}}}}\n"
    return text


@pytest.fixture
def down() -> Iterator[FakeModeration]:
    with FakeModeration() as server:
        server.status = 500
        yield server


async def test_outage_falls_back_to_local_and_the_record_says_so(
        make_guard: GuardFactory, down: FakeModeration) -> None:
    guard, sink = make_guard(policy(), moderation_provider=None, upstream_url=down.base_url)
    async with guard.call() as call:
        verdict = await call.check_request(chat("What is the capital of France?"))
    assert not verdict.blocked and verdict.decision == "allow"
    assert down.requests, "the hosted endpoint was tried first"
    guard.close()
    moderation = sink.records[0]["moderation"]["input"]
    assert moderation["provider"] == "local" and moderation["outcome"] == "pass"
    assert moderation["fallback"] == "local" and moderation["failed_provider"] == "openai"
    assert moderation["error"] == "http_500" and moderation["on_error"] == "local"


async def test_harmful_prompt_is_still_blocked_by_the_local_model_during_an_outage(
        make_guard: GuardFactory, down: FakeModeration) -> None:
    guard, sink = make_guard(policy(), moderation_provider=None, upstream_url=down.base_url)
    async with guard.call() as call:
        verdict = await call.check_request(chat("I want to kill myself tonight."))
    assert verdict.blocked and verdict.code == "guard.moderation"
    assert isinstance(verdict.moderation, FallbackVerdict)
    assert "self-harm" in verdict.moderation.categories
    guard.close()
    record = sink.records[0]["moderation"]["input"]
    assert record["fallback"] == "local" and record["outcome"] == "flagged"


async def test_healthy_endpoint_is_used_without_fallback(make_guard: GuardFactory) -> None:
    with FakeModeration() as fake:
        guard, sink = make_guard(policy(), moderation_provider=None, upstream_url=fake.base_url)
        async with guard.call() as call:
            await call.check_request(chat("hello"))
        guard.close()
    moderation = sink.records[0]["moderation"]["input"]
    assert moderation["provider"] == "openai" and moderation["outcome"] == "pass"
    assert "fallback" not in moderation and moderation["error"] is None


async def test_output_moderation_outage_falls_back_too(
        make_guard: GuardFactory, down: FakeModeration) -> None:
    guard, sink = make_guard(policy(output=True), moderation_provider=None,
                             upstream_url=down.base_url)
    async with guard.call() as call:
        await call.check_request(chat("Tell me about Paris."))
        checked = await call.check_response(answer("Paris is the capital of France."))
    assert not checked.blocked
    assert checked.body["choices"][0]["message"]["content"] == "Paris is the capital of France."
    guard.close()
    output = sink.records[0]["moderation"]["output"]
    assert output["fallback"] == "local" and output["error"] == "http_500"


class Broken:
    name = "broken"

    async def score(self, texts: Sequence[str], images: Sequence[str] = (), *,
                    api_key: str | None = None) -> ProviderScores:
        raise RuntimeError("down")


class Fixed:
    name = "fixed"

    async def score(self, texts: Sequence[str], images: Sequence[str] = (), *,
                    api_key: str | None = None) -> ProviderScores:
        return ProviderScores(scores=dict.fromkeys(CATEGORIES, 0.1) | {"violence": 0.9})


async def test_fallback_verdict_keeps_the_failed_providers_error() -> None:
    moderator = Moderator(Broken(), on_error="local",
                          fallback=Moderator(Fixed(), thresholds={"default": 0.5}))
    verdict = await moderator.check(["text"])
    assert isinstance(verdict, FallbackVerdict)
    assert verdict.provider == "fixed" and verdict.fallback == "fixed"
    assert verdict.failed_provider == "broken" and verdict.error == "provider_error"
    assert verdict.outcome == "flagged" and verdict.categories == ("violence",)


async def test_when_the_fallback_fails_too_the_error_stands() -> None:
    moderator = Moderator(Broken(), on_error="local", fallback=Moderator(Broken()))
    verdict = await moderator.check(["text"])
    assert verdict.outcome == "error" and not isinstance(verdict, FallbackVerdict)


async def test_fallback_failure_blocks_the_request_like_on_error_block(
        make_guard: GuardFactory, down: FakeModeration, monkeypatch: pytest.MonkeyPatch) -> None:
    guard, sink = make_guard(policy(), moderation_provider=None, upstream_url=down.base_url)
    assert guard.input_moderator is not None and guard.input_moderator.fallback is not None
    monkeypatch.setattr(guard.input_moderator.fallback, "provider", Broken())
    async with guard.call() as call:
        verdict = await call.check_request(chat("hello"))
    assert verdict.blocked and verdict.code == "guard.moderation_unavailable"
    guard.close()
    assert sink.records[0]["moderation"]["input"]["outcome"] == "error"


def test_on_error_other_values_get_a_message_that_lists_local() -> None:
    from guard.errors import ConfigError

    with pytest.raises(ConfigError, match="'block', 'allow' or 'local'"):
        Moderator(Fixed(), on_error="retry")  # type: ignore[arg-type]


def test_local_fallback_uses_the_policys_thresholds() -> None:
    moderator = Moderator(Fixed(), thresholds={"default": 0.3, "violence": 0.9}, on_error="local")
    assert moderator.fallback is not None
    assert moderator.fallback.provider.name == "local"
    assert moderator.fallback.default_threshold == 0.3
    assert moderator.fallback.threshold("violence") == 0.9
