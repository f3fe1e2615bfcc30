"""The SDK examples run as documented against the fake upstream, and import without effects."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from examples import sdk_decorator, sdk_wrap
from guard import Guard, MemorySink
from guard.sdk import set_default_guard
from tests.conftest import GuardFactory
from tests.support.sdk import SdkUpstream, assert_no_pii, records

KEY = "sk-example-key"
EMAIL = "maria.gonzalez@example.org"


@pytest.fixture
def default_guard(make_guard: GuardFactory, upstream: SdkUpstream,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Guard, MemorySink]]:
    """The examples' plain clients read OPENAI_BASE_URL; the default guard writes to memory."""
    monkeypatch.setenv("OPENAI_BASE_URL", upstream.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    guard, sink = make_guard(moderation_provider=None, upstream_url=upstream.base_url)
    previous = set_default_guard(guard)
    yield guard, sink
    set_default_guard(previous)


def test_examples_import_without_side_effects() -> None:
    code = ("import examples.sdk_wrap, examples.sdk_decorator, guard.sdk.hook as hook, "
            "guard.sdk.loop as loop; assert not hook._installed; assert loop._LOOP._loop is None")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(__file__).resolve().parents[2])


async def test_sdk_wrap_example_sync_async_and_streaming(
        default_guard: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = default_guard
    with guard.wrap(openai.OpenAI(max_retries=0)) as client:
        assert sdk_wrap.ask(client, sdk_wrap.QUESTION).endswith(sdk_wrap.QUESTION)
        assert "".join(sdk_wrap.ask_streaming(client, sdk_wrap.QUESTION)).endswith(
            sdk_wrap.QUESTION)
    async with guard.wrap(openai.AsyncOpenAI(max_retries=0)) as aclient:
        assert (await sdk_wrap.ask_async(aclient, sdk_wrap.QUESTION)).endswith(
            "Please confirm my email.")
        streamed = [t async for t in sdk_wrap.ask_async_streaming(aclient, sdk_wrap.QUESTION)]
        assert EMAIL in "".join(streamed)
    assert len(records(guard, sink, at_least=4)) == 4
    assert_no_pii(records(guard, sink), [r.body for r in upstream.requests])


async def test_sdk_decorator_example_sync_async_streaming_and_block(
        default_guard: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = default_guard
    assert EMAIL in sdk_decorator.answer(sdk_decorator.QUESTION)
    assert EMAIL in "".join(sdk_decorator.stream_answer(sdk_decorator.QUESTION))
    assert EMAIL in await sdk_decorator.answer_async(sdk_decorator.QUESTION)
    streamed = [t async for t in sdk_decorator.stream_answer_async(sdk_decorator.QUESTION)]
    assert EMAIL in "".join(streamed)
    assert EMAIL in sdk_decorator.nightly_batch([sdk_decorator.QUESTION])[0]
    got = records(guard, sink, at_least=5)
    assert [(r["principal"], r["context"]["purpose"]) for r in got] == [
        ("user:u1", "support"), ("user:u3", "chat"), ("user:u2", "support"),
        ("user:u4", "chat"), ("user:batch", "nightly")]
    assert [r["stream"] for r in got] == [False, True, False, True, False]
    assert_no_pii(got, [r.body for r in upstream.requests])
