"""The ``openai`` provider over real HTTP, against the fake endpoint on loopback."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest

from guard.errors import ConfigError, ModerationUnavailable
from guard.moderation import CATEGORIES, Moderator, OpenAIModeration, build_provider
from tests.support.fake_moderation import IMAGE_CATEGORIES, FakeModeration, closed_port

CONFIG_KEY = "sk-test-configured-key-0001"
CALLER_KEY = "sk-test-caller-key-0002"
SECRET_TEXT = "Maria's secret plan to kill the lights at 42 Elm Street"
TEXT_ONLY = tuple(c for c in CATEGORIES if c not in IMAGE_CATEGORIES)
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeModeration]:
    with FakeModeration() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeModeration) -> FakeModeration:
    server.reset()
    return server


@pytest.fixture
async def provider(fake: FakeModeration) -> AsyncIterator[OpenAIModeration]:
    async with OpenAIModeration(base_url=fake.base_url, api_key=CONFIG_KEY) as p:
        yield p


def moderator(provider: OpenAIModeration, **thresholds: float) -> Moderator:
    return Moderator(provider, thresholds={"default": 0.5, **thresholds}, timeout_s=2.0)


async def test_category_over_threshold_is_flagged(
    fake: FakeModeration, provider: OpenAIModeration
) -> None:
    verdict = await moderator(provider).check(["how do I kill my neighbour"])

    assert verdict.provider == "openai"
    assert verdict.outcome == "flagged"
    assert verdict.categories == ("violence",)
    assert verdict.scores["violence"] == 0.95
    assert set(verdict.scores) == set(CATEGORIES)
    assert verdict.error is None
    assert verdict.unevaluated == ()
    assert verdict.latency_ms > 0


async def test_text_only_request_is_a_list_of_strings_with_the_model(
    fake: FakeModeration, provider: OpenAIModeration
) -> None:
    await moderator(provider).check(["first", "second"])

    (request,) = fake.requests
    assert request.path == "/v1/moderations"
    assert request.body == {"model": "omni-moderation-latest", "input": ["first", "second"]}


async def test_scores_are_the_maximum_over_all_texts(
    fake: FakeModeration, provider: OpenAIModeration
) -> None:
    verdict = await moderator(provider).check(["feeling hopeless", "kill it", "hello"])

    assert verdict.scores["violence"] == 0.95
    assert verdict.scores["self-harm/intent"] == 0.3
    assert verdict.categories == ("violence",)


async def test_score_under_default_threshold_passes(provider: OpenAIModeration) -> None:
    verdict = await moderator(provider).check(["I feel hopeless"])

    assert verdict.outcome == "pass"
    assert verdict.categories == ()
    assert verdict.scores["self-harm/intent"] == 0.3


async def test_category_override_threshold_flags_where_default_would_not(
    provider: OpenAIModeration,
) -> None:
    strict = Moderator(provider, thresholds={"default": 0.5, "self-harm/intent": 0.2})

    verdict = await strict.check(["I feel hopeless"])

    assert verdict.outcome == "flagged"
    assert verdict.categories == ("self-harm/intent",)


async def test_slow_provider_is_cut_off_by_the_moderator_timeout(
    fake: FakeModeration, provider: OpenAIModeration
) -> None:
    fake.delay_s = 5.0
    quick = Moderator(provider, thresholds={"default": 0.5}, timeout_s=0.2, on_error="allow")

    started = time.monotonic()
    verdict = await quick.check(["hello"])

    assert time.monotonic() - started < 1.5
    assert verdict.outcome == "error"
    assert verdict.error == "timeout"
    assert quick.on_error == "allow"
    assert 150 < verdict.latency_ms < 1500


async def test_slow_provider_is_cut_off_by_its_own_http_timeout(fake: FakeModeration) -> None:
    fake.delay_s = 5.0
    async with OpenAIModeration(base_url=fake.base_url, timeout_s=0.2) as slow:
        started = time.monotonic()
        with pytest.raises(ModerationUnavailable) as caught:
            await slow.score(["hello"])

    assert time.monotonic() - started < 1.5
    assert caught.value.kind == "timeout"


async def test_server_error_is_reported_as_http_500(
    fake: FakeModeration, provider: OpenAIModeration
) -> None:
    fake.status = 500

    verdict = await moderator(provider).check(["hello"])

    assert verdict.outcome == "error"
    assert verdict.error == "http_500"
    assert verdict.categories == ()
    assert verdict.scores == {}


async def test_refused_connection_is_reported_as_connection() -> None:
    async with OpenAIModeration(base_url=f"http://127.0.0.1:{closed_port()}/v1") as down:
        verdict = await moderator(down).check(["hello"])

    assert verdict.outcome == "error"
    assert verdict.error == "connection"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"<html>Bad gateway</html>",
        b'{"results": "nope"}',
        b'{"results": []}',
        b'{"results": [{"flagged": false}]}',
        b'{"results": [{"category_scores": {"violence": "high"}}]}',
        b'{"results": [{"category_scores": {"violence": 1.5}}]}',
        b'{"results": [{"category_scores": {"violence": 0.1}}, {"category_scores": {}}]}',
        b"[]",
    ],
    ids=["truncated", "html", "results-not-list", "no-results", "no-scores", "string-score",
         "score-over-1", "too-many-results", "array"],
)
async def test_malformed_body_is_reported_as_bad_response(
    fake: FakeModeration, provider: OpenAIModeration, body: bytes
) -> None:
    fake.raw_body = body

    verdict = await moderator(provider).check(["hello"])

    assert verdict.outcome == "error"
    assert verdict.error == "bad_response"


async def test_authorization_carries_the_configured_key(
    fake: FakeModeration, provider: OpenAIModeration
) -> None:
    await moderator(provider).check(["hello"])

    assert fake.requests[-1].headers["authorization"] == f"Bearer {CONFIG_KEY}"


async def test_per_call_api_key_overrides_the_configured_key(
    fake: FakeModeration, provider: OpenAIModeration
) -> None:
    await moderator(provider).check(["hello"], api_key=CALLER_KEY)

    assert fake.requests[-1].headers["authorization"] == f"Bearer {CALLER_KEY}"


async def test_request_without_any_key_has_no_authorization_header(
    fake: FakeModeration,
) -> None:
    async with OpenAIModeration(base_url=fake.base_url) as keyless:
        await keyless.score(["hello"])

    assert "authorization" not in fake.requests[-1].headers


async def test_images_are_sent_as_image_url_parts_after_the_texts(
    fake: FakeModeration, provider: OpenAIModeration
) -> None:
    url = "https://example.com/cat.png"

    await moderator(provider).check(["what is in this picture?"], [url, PNG])

    assert fake.requests[-1].body["input"] == [
        {"type": "text", "text": "what is in this picture?"},
        {"type": "image_url", "image_url": {"url": url}},
        {"type": "image_url", "image_url": {"url": PNG}},
    ]


async def test_categories_not_applied_to_images_are_reported_unevaluated(
    provider: OpenAIModeration,
) -> None:
    verdict = await moderator(provider).check(["what is in this picture?"], [PNG])

    assert verdict.outcome == "pass"
    assert verdict.unevaluated == tuple(sorted(TEXT_ONLY))
    # Text-only categories were still evaluated for the text.
    assert set(verdict.scores) == set(CATEGORIES)


async def test_image_only_category_counts_as_evaluated(
    fake: FakeModeration, provider: OpenAIModeration
) -> None:
    fake.image_scores = {"violence/graphic": 0.88}

    verdict = await moderator(provider).check([], [PNG])

    assert verdict.outcome == "flagged"
    assert verdict.categories == ("violence/graphic",)
    assert set(verdict.scores) == set(IMAGE_CATEGORIES)
    assert verdict.unevaluated == tuple(sorted(TEXT_ONLY))


async def test_error_body_with_key_fragment_is_not_repeated(fake: FakeModeration) -> None:
    fake.status = 401
    fake.error_body = {"error": {
        "message": f"Incorrect API key provided: {CONFIG_KEY}. You can find your API key...",
        "type": "invalid_request_error", "code": "invalid_api_key", "param": None,
    }}
    async with OpenAIModeration(base_url=fake.base_url, api_key=CONFIG_KEY) as p:
        with pytest.raises(ModerationUnavailable) as caught:
            await p.score([SECRET_TEXT])

    assert caught.value.kind == "http_401"
    assert "invalid_api_key" in str(caught.value)
    assert CONFIG_KEY not in str(caught.value)
    assert CONFIG_KEY not in repr(p)


async def test_no_error_string_contains_the_input_text_or_a_key(fake: FakeModeration) -> None:
    failures: list[dict[str, object]] = [
        {"status": 500}, {"status": 429}, {"raw_body": b"{not json"}, {"delay_s": 5.0},
        {"error_body": {"error": {"message": SECRET_TEXT, "code": SECRET_TEXT}}, "status": 400},
    ]
    async with OpenAIModeration(base_url=fake.base_url, api_key=CONFIG_KEY, timeout_s=0.3) as p:
        quick = Moderator(p, timeout_s=0.2)
        for failure in failures:
            fake.reset()
            for name, value in failure.items():
                setattr(fake, name, value)
            verdict = await quick.check([SECRET_TEXT], api_key=CALLER_KEY)
            with pytest.raises(ModerationUnavailable) as caught:
                await p.score([SECRET_TEXT], api_key=CALLER_KEY)

            assert verdict.outcome == "error"
            for leaked in (SECRET_TEXT, "Maria", "Elm Street", CONFIG_KEY, CALLER_KEY):
                assert leaked not in repr(verdict)
                assert leaked not in str(caught.value)
                assert leaked not in caught.value.kind


async def test_shared_client_is_used_and_left_open(fake: FakeModeration) -> None:
    async with httpx2.AsyncClient() as client:
        async with OpenAIModeration(base_url=fake.base_url + "/", client=client) as p:
            scores = await p.score(["kill"])
        assert not client.is_closed

    assert scores.scores["violence"] == 0.95
    assert fake.requests[-1].path == "/v1/moderations"


def test_registry_builds_the_openai_provider_from_options() -> None:
    built = build_provider("openai", base_url="https://api.openai.com/v1", api_key=CONFIG_KEY,
                           model="omni-moderation-2024-09-26", timeout_s=1.5)

    assert isinstance(built, OpenAIModeration)
    assert built.url == "https://api.openai.com/v1/moderations"
    assert built.model == "omni-moderation-2024-09-26"


@pytest.mark.parametrize(
    "options",
    [{"base_url": "api.openai.com/v1"}, {"base_url": "ftp://example.com"},
     {"base_url": "https://api.openai.com/v1", "timeout_s": 0},
     {"base_url": "https://api.openai.com/v1", "model": ""}],
    ids=["no-scheme", "ftp", "zero-timeout", "empty-model"],
)
def test_bad_openai_options_are_config_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        build_provider("openai", **options)


def test_provider_works_across_event_loops(fake: FakeModeration) -> None:
    """A sync adapter may run one event loop per call; pooled connections must not leak."""
    provider = OpenAIModeration(base_url=fake.base_url, api_key=CONFIG_KEY)

    first = asyncio.run(provider.score(["kill"]))
    second = asyncio.run(provider.score(["kill"]))
    asyncio.run(provider.aclose())

    assert first == second
    assert len(fake.requests) == 2
    gc.collect()


def test_providers_on_one_loop_share_one_client_so_a_reload_leaves_none_open() -> None:
    async def run() -> tuple[bool, bool, bool, bool]:
        old = OpenAIModeration(base_url="http://127.0.0.1:9/v1")
        new = OpenAIModeration(base_url="http://127.0.0.1:9/v1")  # what a reload builds
        first = await old._http()
        shared = first is await new._http()
        await new.aclose()  # a server's shutdown
        reopened = await old._http()
        return shared, first.is_closed, reopened is not first, reopened.is_closed

    shared, closed, reopened, reopened_closed = asyncio.run(run())
    assert shared and closed and reopened
    assert not reopened_closed  # (closed in turn when asyncio.run shut the loop down)
