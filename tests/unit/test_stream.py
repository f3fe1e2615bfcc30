"""StreamGuard on its own: windows are checked concurrently with receiving, released in order.

A moderation provider that answers only when the test opens its gate shows what is running
when; the guard, the call and the rules are the real ones.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest

from guard.engine import Guard
from guard.errors import ModerationUnavailable
from guard.moderation import CATEGORIES, Moderator
from guard.moderation.base import ProviderScores
from guard.stream import MAX_WINDOWS_IN_FLIGHT, StreamGuard
from guard.wire.sse import SSEParser
from tests.conftest import GuardFactory
from tests.support.bodies import chat

POLICY = """
version: 1
name: stream-moderation
pii: {restore_output: true}
moderation:
  input: null
  output: {provider: local, on_error: ON_ERROR}
output:
  streaming: {window_chars: 40, overlap_chars: 12}
  rules:
    - id: harmful
      when: {moderation: true}
      action: ACTION
      message: That answer was withheld.
"""


class GatedModeration:
    """Answers each call only once the test releases it; flags texts containing a trigger."""

    name = "gated"

    def __init__(self, trigger: str = "attack", fail: bool = False) -> None:
        self.trigger = trigger
        self.fail = fail
        self.calls: list[str] = []
        self.answered = 0
        self.gate = asyncio.Semaphore(0)

    def open(self, n: int = 1000) -> None:
        for _ in range(n):
            self.gate.release()

    async def score(self, texts: Sequence[str], images: Sequence[str] = (), *,
                    api_key: str | None = None) -> ProviderScores:
        self.calls.append(" ".join(texts))
        await self.gate.acquire()
        self.answered += 1
        if self.fail:
            raise ModerationUnavailable("http_503", "down")
        flagged = any(self.trigger in t for t in texts)
        return ProviderScores(scores={c: (0.95 if flagged and c == "violence" else 0.01)
                                      for c in CATEGORIES})


def make(make_guard: GuardFactory, *, action: str = "block", on_error: str = "block",
         mode: str = "enforce", **provider: Any) -> tuple[Guard, GatedModeration]:
    text = POLICY.replace("ACTION", action).replace("ON_ERROR", on_error)
    if mode == "monitor":
        text = text.replace("name: stream-moderation", "name: stream-moderation\nmode: monitor")
    guard, _ = make_guard(text)
    gated = GatedModeration(**provider)
    guard.output_moderator = Moderator(gated, on_error=on_error)  # type: ignore[arg-type]
    return guard, gated


def event(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


END = event(finish="stop") + b"data: [DONE]\n\n"


def contents(data: bytes) -> tuple[str, list[str | None]]:
    text, finishes = "", []
    for ev in SSEParser().feed(data):
        if ev.data == "[DONE]":
            continue
        for choice in json.loads(ev.data).get("choices", []):
            text += choice["delta"].get("content") or ""
            finishes.append(choice["finish_reason"])
    return text, finishes


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


WORDS = " ".join(f"word{i:03d}" for i in range(60))  # 479 characters, about 12 windows


async def test_windows_are_moderated_while_later_text_is_still_arriving(
        make_guard: GuardFactory) -> None:
    guard, gated = make(make_guard)
    async with guard.call() as call:
        await call.check_request(chat("hi"))
        stream = StreamGuard(call)
        released = b""
        for start in range(0, 150, 10):
            released += await stream.feed(event(WORDS[start:start + 10]))
        await settle()
        # The first window is with the moderator, unanswered: receiving went on regardless,
        # and nothing was released unchecked.
        assert gated.calls == [WORDS[:40]] and gated.answered == 0
        assert contents(released)[0] == ""
        gated.open(1)
        await settle()
        # What arrived meanwhile went as one batch, with the overlap as left context.
        assert gated.calls[1] == WORDS[40 - 12:150]
        gated.open()
        released += await stream.feed(event(WORDS[150:]) + END)
        released += await stream.finish()
    text, finishes = contents(released)
    assert text == WORDS and finishes[-1] == "stop"
    assert len(gated.calls) <= len(WORDS) // 40 + 2, "one check per window, never per token"


async def test_one_character_per_chunk_still_gives_one_check_per_window(
        make_guard: GuardFactory) -> None:
    guard, gated = make(make_guard)
    gated.open()
    async with guard.call() as call:
        await call.check_request(chat("hi"))
        stream = StreamGuard(call)
        released = b"".join([await stream.feed(event(ch)) for ch in WORDS])
        released += await stream.feed(END) + await stream.finish()
    assert contents(released)[0] == WORDS
    assert len(gated.calls) <= len(WORDS) // 40 + 2


async def test_reading_waits_when_too_many_windows_are_unchecked(make_guard: GuardFactory) -> None:
    guard, gated = make(make_guard)
    async with guard.call() as call:
        await call.check_request(chat("hi"))
        stream = StreamGuard(call)
        for n in range(MAX_WINDOWS_IN_FLIGHT):
            await stream.ingest(event(WORDS[n * 40:(n + 1) * 40]))
        over = asyncio.ensure_future(stream.ingest(event(WORDS[160:240])))
        await settle()
        assert not over.done(), "one window too many: the reader must wait"
        writer = asyncio.ensure_future(_collect(stream))
        gated.open()
        await over
        await stream.ingest(event(WORDS[240:]) + END)
        stream.end_input()
        released = await writer
    assert contents(released)[0] == WORDS


async def _collect(stream: StreamGuard) -> bytes:
    return b"".join([chunk async for chunk in stream.releases()])


async def test_released_text_goes_out_while_the_upstream_is_silent(make_guard: GuardFactory) -> None:
    guard, gated = make(make_guard)
    gated.open()
    async with guard.call() as call:
        await call.check_request(chat("hi"))
        stream = StreamGuard(call)
        out: list[bytes] = []

        async def write() -> None:
            async for chunk in stream.releases():
                out.append(chunk)

        writer = asyncio.ensure_future(write())
        await stream.ingest(event(WORDS[:100]))  # then the upstream says nothing for a while
        for _ in range(200):
            if contents(b"".join(out))[0]:
                break
            await asyncio.sleep(0.005)
        early = contents(b"".join(out))[0]
        await stream.ingest(event(WORDS[100:]) + END)
        stream.end_input()
        await writer
    assert early and WORDS.startswith(early) and len(early) <= 100 - 12
    assert contents(b"".join(out))[0] == WORDS


async def test_a_flagged_window_ends_the_stream_with_content_filter(make_guard: GuardFactory) -> None:
    guard, gated = make(make_guard)
    gated.open()
    text = WORDS[:200] + " and then attack them all " + WORDS[200:]
    async with guard.call() as call:
        await call.check_request(chat("hi"))
        stream = StreamGuard(call)
        released = b""
        for start in range(0, len(text), 7):
            released += await stream.feed(event(text[start:start + 7]))
            if stream.stopped:
                break
        released += await stream.finish()
        record = call.finish()
    got, finishes = contents(released)
    assert "attack" not in got and finishes[-1] == "content_filter"
    assert got.endswith("That answer was withheld.")
    assert released.endswith(b"data: [DONE]\n\n") and released.count(b"[DONE]") == 1
    assert record["decision"] == "block" and record["status"] == "blocked"
    assert record["moderation"]["output"]["outcome"] == "flagged"


async def test_a_flagged_window_is_redacted_when_the_rule_says_redact(make_guard: GuardFactory) -> None:
    guard, gated = make(make_guard, action="redact")
    gated.open()
    text = WORDS[:200] + " and then attack them all " + WORDS[200:]
    async with guard.call() as call:
        await call.check_request(chat("hi"))
        stream = StreamGuard(call)
        released = b"".join([await stream.feed(event(text[i:i + 7]))
                             for i in range(0, len(text), 7)])
        released += await stream.feed(END) + await stream.finish()
        record = call.finish()
    got, finishes = contents(released)
    assert "attack" not in got and "[REDACTED:harmful]" in got and finishes[-1] == "stop"
    assert got.startswith(WORDS[:100]) and got.endswith(WORDS[-100:])
    assert record["decision"] == "redact"


async def test_monitor_mode_passes_text_on_before_its_check_and_records_the_flag(
        make_guard: GuardFactory) -> None:
    guard, gated = make(make_guard, mode="monitor")
    text = WORDS[:100] + " and then attack them all " + WORDS[100:]
    async with guard.call() as call:
        await call.check_request(chat("hi"))
        stream = StreamGuard(call)
        released = b"".join([await stream.feed(event(text[i:i + 7])) for i in range(0, 140, 7)])
        before_any_answer = contents(released)[0]
        gated.open()
        released += b"".join([await stream.feed(event(text[i:i + 7]))
                              for i in range(140, len(text), 7)])
        released += await stream.feed(END) + await stream.finish()
        record = call.finish()
    assert gated.answered >= 3
    assert before_any_answer == text[:140], "monitor mode does not wait for a check"
    assert contents(released)[0] == text
    assert record["decision"] == "block" and record["status"] == "ok"
    assert record["output_rules"] == [{"id": "harmful", "action": "block"}]


async def test_monitor_mode_records_an_outage_as_what_on_error_would_have_done(
        make_guard: GuardFactory) -> None:
    guard, gated = make(make_guard, mode="monitor", fail=True)
    gated.open()
    async with guard.call() as call:
        await call.check_request(chat("hi"))
        stream = StreamGuard(call)
        released = await stream.feed(event(WORDS) + END) + await stream.finish()
        record = call.finish()
    assert contents(released)[0] == WORDS
    assert record["decision"] == "block" and record["moderation"]["output"]["outcome"] == "error"


@pytest.mark.parametrize("on_error", ["block", "allow"])
async def test_a_moderation_outage_mid_stream_follows_on_error(
        make_guard: GuardFactory, on_error: str) -> None:
    guard, gated = make(make_guard, on_error=on_error, fail=True)
    gated.open()
    async with guard.call() as call:
        await call.check_request(chat("hi"))
        stream = StreamGuard(call)
        released = await stream.feed(event(WORDS) + END) + await stream.finish()
        record = call.finish()
    got, finishes = contents(released)
    output = record["moderation"]["output"]
    assert output["outcome"] == "error" and output["on_error"] == on_error
    if on_error == "block":
        assert got == "The answer could not be checked and was withheld."
        assert finishes[-1] == "content_filter" and record["decision"] == "block"
    else:
        assert got == WORDS and finishes[-1] == "stop" and record["decision"] == "allow"


async def test_a_client_that_goes_away_cancels_the_checks_and_keeps_what_was_decided(
        make_guard: GuardFactory) -> None:
    guard, gated = make(make_guard)
    async with guard.call() as call:
        await call.check_request(chat("hi"))
        stream = StreamGuard(call)
        await stream.feed(event(WORDS[:200]))
        await settle()
        assert gated.calls and gated.answered == 0
        await stream.aclose()
        assert not any(not t.done() for t in asyncio.all_tasks() if t is not asyncio.current_task()
                       and "_window" in repr(t.get_coro()))
        record = call.finish("client_disconnected")
    assert record["status"] == "client_disconnected"
