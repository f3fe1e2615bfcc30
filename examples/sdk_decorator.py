"""Guard every OpenAI call a function makes: ``@guard.protect(user=..., purpose=...)``.

Plain ``OpenAI()``/``AsyncOpenAI()`` clients used inside a protected function are guarded
(wherever they were created); each call's audit record names the function, the user, the
purpose and the tags. Sync and async functions and (async) generators that stream work the
same way; ``guard.context(...)`` does it for a block of code.

Run it without an account against the offline upstream of ``guard serve``::

    guard serve --port 8080 &
    OPENAI_BASE_URL=http://127.0.0.1:8080/v1 GUARD_AUDIT=stdout python -m examples.sdk_decorator

or against OpenAI with ``OPENAI_API_KEY`` set. Importing this module does nothing: the
decorators only take effect when the functions run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

from openai import AsyncOpenAI, OpenAI

import guard

QUESTION = "Hi, I'm Maria Gonzalez (maria.gonzalez@example.org). Please confirm my email."


def _key() -> str:
    return os.environ.get("OPENAI_API_KEY", "offline")  # the offline upstream takes any key


@guard.protect(user="u1", purpose="support", tags=["example"])
def answer(question: str) -> str:
    with OpenAI(api_key=_key()) as client:  # a plain client: guarded because it runs here
        completion = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
    return completion.choices[0].message.content or ""


@guard.protect(user="u2", purpose="support")
async def answer_async(question: str) -> str:
    async with AsyncOpenAI(api_key=_key()) as client:
        completion = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
    return completion.choices[0].message.content or ""


@guard.protect(user="u3", purpose="chat")
def stream_answer(question: str) -> Iterator[str]:
    with OpenAI(api_key=_key()) as client:
        for chunk in client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": question}],
                stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content


@guard.protect(user="u4", purpose="chat")
async def stream_answer_async(question: str) -> AsyncIterator[str]:
    async with AsyncOpenAI(api_key=_key()) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}], stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content


def nightly_batch(questions: list[str]) -> list[str]:
    """Not one function per call? Guard a block instead."""
    with guard.context(user="batch", purpose="nightly"), OpenAI(api_key=_key()) as client:
        return [client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": q}],
                ).choices[0].message.content or "" for q in questions]


def main() -> None:
    if not os.environ.get("OPENAI_API_KEY"):
        # Offline: moderate with the local classifier, as `guard serve` does.
        guard.sdk.set_default_guard(
            guard.Guard.from_policy("default", moderation_provider="local"))
    print("sync:          ", answer(QUESTION))
    print("streamed:      ", "".join(stream_answer(QUESTION)))
    print("async:         ", asyncio.run(answer_async(QUESTION)))

    async def collect() -> str:
        return "".join([t async for t in stream_answer_async(QUESTION)])

    print("async streamed:", asyncio.run(collect()))
    print("batch:         ", nightly_batch([QUESTION]))
    guard.sdk.default_guard().close()  # flush the audit trail


if __name__ == "__main__":
    main()
