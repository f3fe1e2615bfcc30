"""Run one coroutine per line with bounded concurrency, in order, reporting progress."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

Progress = Callable[[int], None]
"""Called with the number of lines just finished."""

DEFAULT_CONCURRENCY = 8
"""Lines in flight at once: enough to keep NER threads and moderation calls busy."""


async def map_lines(fn: Callable[[int], Awaitable[T]], count: int, *,
                    concurrency: int = DEFAULT_CONCURRENCY,
                    progress: Progress | None = None) -> list[T]:
    """``[await fn(0), ..., await fn(count - 1)]``, at most ``concurrency`` at a time.

    The first failure cancels the rest (a task group) and is raised.
    """
    results: dict[int, T] = {}
    indexes = iter(range(count))

    async def worker() -> None:
        for i in indexes:  # a shared iterator: each index is taken by exactly one worker
            results[i] = await fn(i)
            if progress is not None:
                progress(1)

    async with asyncio.TaskGroup() as group:
        for _ in range(max(1, min(concurrency, count))):
            group.create_task(worker())
    return [results[i] for i in range(count)]
