"""``@guard.protect(...)`` and ``guard.context(...)`` over real HTTP with the official SDK.

Plain clients created inside a protected function are guarded; calls outside are not; each
call's audit record says which function, user, purpose and tags it came from.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest

from guard import Guard, MemorySink
from guard.sdk import current
from tests.support.sdk import (
    HISTORY,
    SdkUpstream,
    assert_no_pii,
    records,
)

KEY = "sk-client-key-123"
ALICE = "alice.smith@example.com"
BOB = "bob.jones@example.net"


def ask(base_url: str, content: str | list[dict[str, Any]]) -> str:
    """One chat completion through a plain client created right here."""
    messages = content if isinstance(content, list) else [{"role": "user", "content": content}]
    with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    return completion.choices[0].message.content or ""


async def ask_async(base_url: str, content: str) -> str:
    async with openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
        completion = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": content}])
    return completion.choices[0].message.content or ""


def test_plain_client_created_inside_is_guarded_and_attributed(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded

    @guard.protect(user="u1", purpose="support", tags=["beta", "eu"])
    def answer(messages: list[dict[str, Any]]) -> str:
        return ask(upstream.base_url, messages)

    content = answer(HISTORY)
    assert content.endswith("Call me at (415) 555-0132 or mail maria.gonzalez@example.org.")
    assert upstream.chat_requests[-1].body["messages"][2]["content"] == (
        "Call me at <PHONE_NUMBER_1> or mail <EMAIL_ADDRESS_1>.")
    (record,) = records(guard, sink)
    assert record["principal"] == "user:u1"
    assert record["context"] == {"function": answer.__qualname__, "user": "u1",
                                 "purpose": "support", "tags": ["beta", "eu"]}
    assert answer.__qualname__.endswith("<locals>.answer")
    assert_no_pii(record, [r.body for r in upstream.requests])


def test_plain_client_outside_protect_is_untouched(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded

    @guard.protect(user="u1")  # installs the hook for plain clients
    def unused() -> None:
        pass

    content = ask(upstream.base_url, HISTORY)
    assert "Maria Gonzalez" in json.dumps(upstream.chat_requests[-1].body)
    assert content.endswith("mail maria.gonzalez@example.org.")
    assert records(guard, sink, at_least=0) == []


def test_plain_client_created_inside_but_used_after_is_untouched(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded

    @guard.protect(user="u1")
    def make() -> openai.OpenAI:
        return openai.OpenAI(base_url=upstream.base_url, api_key=KEY, max_retries=0)

    with make() as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=HISTORY)
    assert "Maria Gonzalez" in json.dumps(upstream.chat_requests[-1].body)
    assert records(guard, sink, at_least=0) == []


async def test_concurrent_tasks_keep_their_own_user_and_placeholders(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    upstream.delay_s = 0.3  # both requests are with the upstream at the same time

    @guard.protect(user="alice", purpose="billing")
    async def as_alice() -> str:
        return await ask_async(upstream.base_url, f"My email is {ALICE}")

    @guard.protect(user="bob", purpose="support")
    async def as_bob() -> str:
        return await ask_async(upstream.base_url, f"My email is {BOB}")

    alice, bob = await asyncio.gather(as_alice(), as_bob())
    assert alice.endswith(f"My email is {ALICE}") and BOB not in alice
    assert bob.endswith(f"My email is {BOB}") and ALICE not in bob
    sent = [r.body["messages"][0]["content"] for r in upstream.chat_requests]
    assert sent == ["My email is <EMAIL_ADDRESS_1>"] * 2, "each call numbers its own values"
    by_user = {r["principal"]: r for r in records(guard, sink, at_least=2)}
    assert set(by_user) == {"user:alice", "user:bob"}
    assert by_user["user:alice"]["context"]["purpose"] == "billing"
    assert by_user["user:bob"]["context"]["function"] == as_bob.__qualname__
    assert_no_pii(list(by_user.values()), [r.body for r in upstream.requests],
                  values=[ALICE, BOB])


def test_concurrent_threads_keep_their_own_user(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    upstream.delay_s = 0.2
    results: dict[str, str] = {}

    def run_as(user: str, email: str) -> None:
        @guard.protect(user=user)
        def work() -> str:
            return ask(upstream.base_url, f"My email is {email}")
        results[user] = work()

    threads = [threading.Thread(target=run_as, args=("alice", ALICE)),
               threading.Thread(target=run_as, args=("bob", BOB))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["alice"].endswith(ALICE) and results["bob"].endswith(BOB)
    principals = sorted(r["principal"] for r in records(guard, sink, at_least=2))
    assert principals == ["user:alice", "user:bob"]
    assert current() is None, "no scope leaks into the thread that started them"


def test_exception_inside_the_function_still_leaves_one_record_per_call(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded

    @guard.protect(user="u1")
    def fails_after_two_calls() -> None:
        ask(upstream.base_url, "first question")
        ask(upstream.base_url, "second question")
        raise RuntimeError("the application failed")

    with pytest.raises(RuntimeError):
        fails_after_two_calls()
    assert current() is None
    got = records(guard, sink, at_least=2)
    assert len(got) == 2 and all(r["status"] == "ok" for r in got)
    assert {r["context"]["function"] for r in got} == {fails_after_two_calls.__qualname__}


def test_wrapped_client_inside_protect_gets_the_scope_context(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    client = guard.wrap(openai.OpenAI(base_url=upstream.base_url, api_key=KEY, max_retries=0))

    @guard.protect(user="u2", purpose="triage")
    def triage() -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=HISTORY)

    triage()
    client.chat.completions.create(model="gpt-4o-mini", messages=HISTORY)  # outside: no context
    client.close()
    inside, outside = records(guard, sink, at_least=2)
    assert (inside["principal"], inside["context"]["purpose"]) == ("user:u2", "triage")
    assert outside["principal"].startswith("key:") and "context" not in outside


def test_nested_scopes_inherit_what_they_leave_unset(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded

    @guard.protect(purpose="summarise")
    def inner() -> str:
        return ask(upstream.base_url, "inner question")

    @guard.protect(user="u3", purpose="support", tags=["t1"])
    def outer() -> str:
        ask(upstream.base_url, "outer question")
        return inner()

    outer()
    first, second = records(guard, sink, at_least=2)
    assert first["context"] == {"function": outer.__qualname__, "user": "u3",
                                "purpose": "support", "tags": ["t1"]}
    assert second["context"] == {"function": inner.__qualname__, "user": "u3",
                                 "purpose": "summarise", "tags": ["t1"]}


def test_context_block_guards_plain_clients_sync(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    with guard.context(user="batch-7", purpose="nightly") as scope:
        assert scope.user == "batch-7"
        ask(upstream.base_url, HISTORY)
    assert current() is None
    (record,) = records(guard, sink)
    assert record["principal"] == "user:batch-7"
    assert record["context"] == {"function": None, "user": "batch-7", "purpose": "nightly",
                                 "tags": []}
    assert_no_pii(record, [r.body for r in upstream.requests])


async def test_context_block_guards_plain_clients_async(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    async with guard.context(user="u4"):
        content = await ask_async(upstream.base_url, f"My email is {ALICE}")
    assert content.endswith(ALICE)
    assert upstream.chat_requests[-1].body["messages"][0]["content"] == (
        "My email is <EMAIL_ADDRESS_1>")
    (record,) = records(guard, sink)
    assert record["principal"] == "user:u4"


def test_policy_override_per_protected_function(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    card = "4111 1111 1111 1111"

    @guard.protect(user="u5", policy="payments")
    def pay() -> str:
        return ask(upstream.base_url, f"Charge card {card}")

    with pytest.raises(openai.BadRequestError) as info:
        pay()
    assert info.value.code == "guard.pii"
    (record,) = records(guard, sink)
    assert (record["policy"]["name"], record["principal"]) == ("payments", "user:u5")
    assert upstream.chat_requests == []


def test_generator_function_is_guarded_only_while_it_runs(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded

    @guard.protect(user="u6")
    def answers(questions: list[str]) -> Iterator[str]:
        for question in questions:
            assert current() is not None and current().user == "u6"  # type: ignore[union-attr]
            yield ask(upstream.base_url, question)

    seen = []
    for content in answers([f"mail {ALICE}", f"mail {BOB}"]):
        assert current() is None, "the scope is not current in the caller between items"
        ask(upstream.base_url, "unguarded in between")
        seen.append(content)
    assert seen[0].endswith(ALICE) and seen[1].endswith(BOB)
    bodies = [r.body["messages"][0]["content"] for r in upstream.chat_requests]
    assert bodies == ["mail <EMAIL_ADDRESS_1>", "unguarded in between",
                      "mail <EMAIL_ADDRESS_1>", "unguarded in between"]
    got = records(guard, sink, at_least=2)
    assert [r["context"]["function"] for r in got] == [answers.__qualname__] * 2


async def test_async_generator_function_is_guarded_only_while_it_runs(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded

    @guard.protect(user="u7")
    async def answers(questions: list[str]) -> AsyncIterator[str]:
        for question in questions:
            yield await ask_async(upstream.base_url, question)

    seen = []
    async for content in answers([f"mail {ALICE}", f"mail {BOB}"]):
        assert current() is None
        seen.append(content)
    assert seen[0].endswith(ALICE) and seen[1].endswith(BOB)
    got = records(guard, sink, at_least=2)
    assert {r["principal"] for r in got} == {"user:u7"} and len(got) == 2


def test_closing_a_protected_generator_early_ends_cleanly(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    cleaned: list[bool] = []

    @guard.protect(user="u8")
    def answers() -> Iterator[str]:
        try:
            yield ask(upstream.base_url, "one")
            yield ask(upstream.base_url, "two")
        finally:
            cleaned.append(current() is not None)

    gen = answers()
    next(gen)
    gen.close()
    assert cleaned == [True], "the generator's own cleanup runs inside its scope"
    assert current() is None
    assert len(records(guard, sink, at_least=1)) == 1


def test_bare_decorator_without_arguments(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded

    @guard.protect
    def plain() -> str:
        return ask(upstream.base_url, HISTORY)

    plain()
    (record,) = records(guard, sink)
    assert record["context"]["function"] == plain.__qualname__
    assert record["principal"].startswith("key:")


def test_module_level_client_created_before_the_decorator_is_guarded_inside(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream) -> None:
    guard, sink = guarded
    client = openai.OpenAI(base_url=upstream.base_url, api_key=KEY, max_retries=0)
    custom = openai.OpenAI(base_url=upstream.base_url, api_key=KEY, max_retries=0,
                           http_client=openai.DefaultHttpxClient(timeout=9))

    @guard.protect(user="u9")
    def use(c: openai.OpenAI) -> str:
        return c.chat.completions.create(
            model="gpt-4o-mini", messages=HISTORY).choices[0].message.content or ""

    assert use(client).endswith("mail maria.gonzalez@example.org.")
    use(custom)
    assert_no_pii([r.body for r in upstream.chat_requests])
    client.chat.completions.create(model="gpt-4o-mini", messages=HISTORY)
    assert "Maria Gonzalez" in json.dumps(upstream.chat_requests[-1].body)
    client.close()
    custom.close()
    got = records(guard, sink, at_least=2)
    assert [r["principal"] for r in got] == ["user:u9", "user:u9"]
