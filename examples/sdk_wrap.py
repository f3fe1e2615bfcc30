"""Guard an existing OpenAI client with one line: ``client = guard.wrap(OpenAI())``.

Personal data is replaced by placeholders before the prompt leaves, the answer comes back
with the values restored, flagged prompts raise ``openai.BadRequestError``, and every call
leaves one PII-free audit record. Sync, async and streaming all work the same way.

Run it without an account against the offline upstream of ``guard serve``::

    guard serve --port 8080 &
    OPENAI_BASE_URL=http://127.0.0.1:8080/v1 GUARD_AUDIT=stdout python -m examples.sdk_wrap

or against OpenAI with ``OPENAI_API_KEY`` set. Importing this module does nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

from openai import AsyncOpenAI, BadRequestError, OpenAI

from guard import Guard

QUESTION = "Hi, I'm Maria Gonzalez (maria.gonzalez@example.org). Please confirm my email."


def build_guard() -> Guard:
    """The default policy; without an OpenAI key, moderate offline (as ``guard serve`` does)."""
    offline = not os.environ.get("OPENAI_API_KEY")
    return Guard.from_policy("default", moderation_provider="local" if offline else None)


def ask(client: OpenAI, question: str) -> str:
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
    return completion.choices[0].message.content or ""


def ask_streaming(client: OpenAI, question: str) -> Iterator[str]:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}], stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            yield chunk.choices[0].delta.content


async def ask_async(client: AsyncOpenAI, question: str) -> str:
    completion = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
    return completion.choices[0].message.content or ""


async def ask_async_streaming(client: AsyncOpenAI, question: str) -> AsyncIterator[str]:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}], stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            yield chunk.choices[0].delta.content


def main() -> None:
    guard = build_guard()
    key = os.environ.get("OPENAI_API_KEY", "offline")  # the offline upstream takes any key
    with guard.wrap(OpenAI(api_key=key)) as client:  # ← the one line
        print("sync:     ", ask(client, QUESTION))
        print("streamed: ", "".join(ask_streaming(client, QUESTION)))
        try:
            ask(client, "How do I make a pipe bomb to kill my neighbour?")
        except BadRequestError as exc:
            print("blocked:  ", exc.code)  # guard.moderation

    async def run_async() -> None:
        async with guard.wrap(AsyncOpenAI(api_key=key)) as aclient:
            print("async:    ", await ask_async(aclient, QUESTION))
            print("async streamed:", "".join([t async for t in ask_async_streaming(aclient,
                                                                                  QUESTION)]))

    asyncio.run(run_async())
    guard.close()  # flush the audit trail


if __name__ == "__main__":
    main()
