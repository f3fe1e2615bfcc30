"""``@protect(...)`` and ``context(...)``: every SDK call made inside is guarded and attributed.

::

    @Protector(GuardSource(guard), user="u1", purpose="support", tags=["beta"])
    def answer(question: str) -> str:
        client = OpenAI()          # a plain client created here is guarded too
        return client.chat.completions.create(...).choices[0].message.content

Sync and async functions and (async) generator functions are supported. The scope is
current exactly while the function's own code runs: for a generator, from each resume to
the next ``yield``, never in the caller's code between two items. ``context(...)`` does the
same for a block (``with`` or ``async with``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from contextvars import Token
from types import TracebackType
from typing import Any, TypeVar, cast

from guard.sdk.guards import GuardSource
from guard.sdk.hook import ensure_installed
from guard.sdk.scope import Scope, current, pop, push

F = TypeVar("F", bound=Callable[..., Any])


def as_tags(tags: Iterable[str] | None) -> tuple[str, ...] | None:
    """Tags as a tuple (a lone string is one tag, not its characters)."""
    if tags is None:
        return None
    if isinstance(tags, str):
        return (tags,)
    return tuple(tags)


class Protector:
    """A decorator: calls of the decorated function run in a :class:`Scope`."""

    def __init__(self, source: GuardSource, *, user: str | None = None,
                 purpose: str | None = None, tags: Iterable[str] | None = None) -> None:
        self.source = source
        self.user = user
        self.purpose = purpose
        self.tags = as_tags(tags)

    def __call__(self, fn: F) -> F:
        scope = Scope(self.source, user=self.user, purpose=self.purpose, tags=self.tags,
                      function=getattr(fn, "__qualname__", None) or repr(fn))
        wrapper: Callable[..., Any]
        if inspect.isasyncgenfunction(fn):
            wrapper = _async_generator(fn, scope)
        elif inspect.isgeneratorfunction(fn):
            wrapper = _generator(fn, scope)
        elif inspect.iscoroutinefunction(fn):
            wrapper = _coroutine(fn, scope)
        else:
            wrapper = _function(fn, scope)
        return cast(F, functools.wraps(fn)(wrapper))


class GuardContext:
    """``with``/``async with`` block in which SDK calls are guarded and attributed.

    >>> with GuardContext(Scope(GuardSource(), user="u1")) as scope:  # doctest: +SKIP
    ...     scope.user
    'u1'
    """

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._tokens: list[Token[Scope | None]] = []

    def __enter__(self) -> Scope:
        self._tokens.append(enter(self.scope))
        return current() or self.scope

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        pop(self._tokens.pop())

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)


def enter(scope: Scope) -> Token[Scope | None]:
    """Make ``scope`` current (hooking plain clients first, once); undo with ``pop``."""
    ensure_installed()
    return push(scope)


def _function(fn: Callable[..., Any], scope: Scope) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = enter(scope)
        try:
            return fn(*args, **kwargs)
        finally:
            pop(token)
    return wrapper


def _coroutine(fn: Callable[..., Any], scope: Scope) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = enter(scope)
        try:
            return await fn(*args, **kwargs)
        finally:
            pop(token)
    return wrapper


def _generator(fn: Callable[..., Generator[Any, Any, Any]],
               scope: Scope) -> Callable[..., Generator[Any, Any, Any]]:
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        inner = fn(*args, **kwargs)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            token = enter(scope)
            try:
                item = inner.throw(thrown) if thrown is not None else inner.send(sent)
            except StopIteration as stop:
                return stop.value
            finally:
                pop(token)
            thrown = None
            try:
                sent = yield item
            except GeneratorExit:
                token = push(scope)
                try:
                    inner.close()
                finally:
                    pop(token)
                raise
            except BaseException as exc:
                sent, thrown = None, exc
    return wrapper


def _async_generator(fn: Callable[..., AsyncGenerator[Any, Any]],
                     scope: Scope) -> Callable[..., AsyncGenerator[Any, Any]]:
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        inner = fn(*args, **kwargs)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            token = enter(scope)
            try:
                if thrown is not None:
                    item = await inner.athrow(thrown)
                else:
                    item = await inner.asend(sent)
            except StopAsyncIteration:
                return
            finally:
                pop(token)
            thrown = None
            try:
                sent = yield item
            except GeneratorExit:
                token = push(scope)
                try:
                    await inner.aclose()
                finally:
                    pop(token)
                raise
            except BaseException as exc:
                sent, thrown = None, exc
    return wrapper
