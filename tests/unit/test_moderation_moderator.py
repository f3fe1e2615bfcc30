"""The Moderator (thresholds, timeout, error reporting) and the provider registry."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

import guard.moderation
from guard.errors import ConfigError, ModerationUnavailable
from guard.moderation import (
    CATEGORIES,
    LocalModeration,
    Moderator,
    NoModeration,
    ProviderScores,
    build_provider,
    provider_names,
    register_provider,
    registry,
)

SECRET = "Maria Gonzalez wants to hurt herself"


@dataclass
class Stub:
    """A provider that returns fixed scores (or raises) and counts its calls."""

    scores: dict[str, float] = field(default_factory=dict)
    unevaluated: frozenset[str] = frozenset()
    raises: BaseException | None = None
    delay_s: float = 0.0
    calls: list[tuple[list[str], list[str], str | None]] = field(default_factory=list)
    name: str = "stub"

    async def score(
        self, texts: Sequence[str], images: Sequence[str] = (), *, api_key: str | None = None
    ) -> ProviderScores:
        self.calls.append((list(texts), list(images), api_key))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.raises is not None:
            raise self.raises
        return ProviderScores(scores=self.scores, unevaluated=self.unevaluated)


def test_categories_are_the_13_omni_moderation_names() -> None:
    assert CATEGORIES == (
        "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
        "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
        "sexual/minors", "violence", "violence/graphic",
    )


def test_public_names_are_exactly_the_documented_ones() -> None:
    assert sorted(guard.moderation.__all__) == [
        "CATEGORIES", "CircuitBreaker", "FallbackVerdict", "LocalModeration", "ModerationProvider",
        "Moderator", "NoModeration", "OpenAIModeration", "ProviderScores", "build_provider", "provider_names",
        "register_provider",
    ]


async def test_empty_input_passes_without_calling_the_provider() -> None:
    stub = Stub()

    verdict = await Moderator(stub).check([])
    blank = await Moderator(stub).check(["", "   \n"], [""])

    assert verdict.outcome == blank.outcome == "pass"
    assert verdict.provider == "stub"
    assert stub.calls == []


async def test_texts_images_and_key_reach_the_provider_in_one_call() -> None:
    stub = Stub(scores={"violence": 0.1})

    await Moderator(stub).check(["a", "", "b"], ["https://example.com/x.png"], api_key="k")

    assert stub.calls == [(["a", "b"], ["https://example.com/x.png"], "k")]


async def test_score_at_the_threshold_is_flagged() -> None:
    verdict = await Moderator(Stub(scores={"hate": 0.5}), thresholds={"default": 0.5}).check(
        ["x"]
    )

    assert verdict.outcome == "flagged"
    assert verdict.categories == ("hate",)


async def test_default_threshold_is_half_when_not_given() -> None:
    moderator = Moderator(Stub(scores={"hate": 0.49, "violence": 0.51}))

    verdict = await moderator.check(["x"])

    assert moderator.default_threshold == 0.5
    assert verdict.categories == ("violence",)


async def test_override_applies_to_its_category_only() -> None:
    stub = Stub(scores={"self-harm/intent": 0.25, "violence": 0.25})
    moderator = Moderator(stub, thresholds={"default": 0.5, "self-harm/intent": 0.2})

    verdict = await moderator.check(["x"])

    assert verdict.categories == ("self-harm/intent",)
    assert moderator.threshold("violence") == 0.5


async def test_scores_are_rounded_and_ordered_highest_first_categories_in_api_order() -> None:
    stub = Stub(scores={"violence": 0.912345678, "hate": 0.95, "sexual": 0.00001234})

    verdict = await Moderator(stub).check(["x"])

    assert list(verdict.scores.items()) == [("hate", 0.95), ("violence", 0.9123),
                                            ("sexual", 0.0)]
    assert verdict.categories == ("hate", "violence")


async def test_unevaluated_categories_are_sorted() -> None:
    stub = Stub(unevaluated=frozenset({"sexual/minors", "hate", "harassment"}))

    verdict = await Moderator(stub).check(["x"])

    assert verdict.outcome == "pass"
    assert verdict.unevaluated == ("harassment", "hate", "sexual/minors")


async def test_unknown_category_from_provider_uses_the_default_threshold() -> None:
    verdict = await Moderator(Stub(scores={"new-category": 0.7})).check(["x"])

    assert verdict.categories == ("new-category",)


async def test_none_provider_verdict_is_skipped() -> None:
    verdict = await Moderator(NoModeration()).check(["anything at all"])

    assert verdict.outcome == "skipped"
    assert verdict.provider == "none"
    assert verdict.categories == ()


async def test_provider_unavailable_becomes_an_error_verdict_with_its_kind() -> None:
    stub = Stub(raises=ModerationUnavailable("http_503", "upstream busy"))

    verdict = await Moderator(stub, on_error="block").check(["x"])

    assert verdict.outcome == "error"
    assert verdict.error == "http_503"
    assert verdict.flagged is False


async def test_moderator_timeout_bounds_a_hanging_provider() -> None:
    verdict = await Moderator(Stub(delay_s=10), timeout_s=0.05).check(["x"])

    assert verdict.outcome == "error"
    assert verdict.error == "timeout"


async def test_provider_bug_becomes_provider_error_and_logs_no_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub = Stub(raises=RuntimeError(f"crashed on {SECRET}"))

    with caplog.at_level(logging.ERROR):
        verdict = await Moderator(stub).check([SECRET])

    assert verdict.error == "provider_error"
    assert "RuntimeError" in caplog.text
    assert SECRET not in caplog.text


async def test_kind_that_is_not_a_short_token_is_replaced() -> None:
    stub = Stub(raises=ModerationUnavailable(f"failed for {SECRET}"))

    verdict = await Moderator(stub).check([SECRET])

    assert verdict.error == "provider_error"


@pytest.mark.parametrize("bad", [math.nan, 1.5, -0.1, math.inf])
async def test_score_outside_zero_to_one_is_a_bad_response(bad: float) -> None:
    verdict = await Moderator(Stub(scores={"violence": bad})).check(["x"])

    assert verdict.outcome == "error"
    assert verdict.error == "bad_response"


async def test_cancellation_is_not_swallowed() -> None:
    task = asyncio.create_task(Moderator(Stub(delay_s=10), timeout_s=5).check(["x"]))
    await asyncio.sleep(0.01)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


def test_unknown_threshold_category_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        Moderator(Stub(), thresholds={"default": 0.5, "selfharm": 0.2})

    message = str(caught.value)
    assert "selfharm" in message
    assert "default" in message
    assert all(category in message for category in CATEGORIES)


@pytest.mark.parametrize("value", [1.1, -0.5, "0.5", True])
def test_threshold_outside_zero_to_one_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError):
        Moderator(Stub(), thresholds={"violence": value})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "options", [{"timeout_s": 0}, {"timeout_s": -1}, {"on_error": "ignore"}],
    ids=["zero-timeout", "negative-timeout", "unknown-on-error"],
)
def test_bad_moderator_options_are_config_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Moderator(Stub(), **options)  # type: ignore[arg-type]


def test_unknown_provider_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        build_provider("nope")

    assert "'nope'" in str(caught.value)
    assert "local, none, openai" in str(caught.value)


def test_unknown_provider_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        build_provider("local", api_key="sk-x")

    assert "local" in str(caught.value)


def test_registry_builds_local_and_none() -> None:
    assert isinstance(build_provider("local"), LocalModeration)
    assert isinstance(build_provider("none"), NoModeration)
    assert set(provider_names()) >= {"local", "none", "openai"}


def test_registering_a_provider_makes_it_buildable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_PROVIDERS", dict(registry._PROVIDERS))
    register_provider("test-stub", Stub)

    assert isinstance(build_provider("test-stub", scores={"hate": 0.1}), Stub)
    with pytest.raises(ConfigError):
        register_provider("test-stub", Stub)
