"""Guard around OpenAI SDK calls: ``wrap(client)``, ``@protect(...)``, ``context(...)``.

The same engine, decisions and audit record as the proxy, without running a proxy::

    import guard
    from openai import OpenAI

    client = guard.wrap(OpenAI())   # chat completions, responses, embeddings are guarded

    @guard.protect(user="u1", purpose="support")  # plain clients created inside too
    def answer(question: str) -> str:
        return OpenAI().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}],
        ).choices[0].message.content or ""

With ``guard=None`` these use the process default guard (default policy, settings from the
environment, built on first use); ``Guard.wrap``/``Guard.protect``/``Guard.context`` pass
their own. ``policy=`` names another policy for one client, function or block.

Module map: ``clients`` (copy a client with guarded transports), ``transport`` (the httpx2
transports), ``exchange`` (one HTTP attempt through the engine), ``streams`` (SSE answers),
``routes`` (what is guarded), ``guards`` (which Guard, per policy and API base),
``scope`` + ``decorators`` (who is calling), ``hook`` (plain clients), ``loop`` (the
background event loop of sync clients).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from guard.sdk.clients import wrap_client
from guard.sdk.decorators import GuardContext, Protector, as_tags
from guard.sdk.guards import GuardSource, PolicyLike, default_guard, load, set_default_guard
from guard.sdk.loop import shutdown
from guard.sdk.routes import Routes
from guard.sdk.scope import Scope, current
from guard.sdk.transport import DEFAULT_ROUTES

if TYPE_CHECKING:
    from guard.engine import Guard

__all__ = [
    "GuardContext",
    "Routes",
    "Scope",
    "context",
    "current",
    "default_guard",
    "protect",
    "set_default_guard",
    "shutdown",
    "wrap",
]

ClientT = TypeVar("ClientT")
F = TypeVar("F", bound=Callable[..., Any])


def wrap(client: ClientT, *, policy: PolicyLike | None = None, guard: Guard | None = None,
         routes: Iterable[str] | None = None) -> ClientT:
    """A copy of ``client`` whose chat completions, responses (stream or not) and embeddings
    go through the engine.

    ``client``: ``OpenAI``, ``AsyncOpenAI``, ``AzureOpenAI``, a ``with_options`` copy...
    Blocks raise the SDK's own ``BadRequestError`` (``code`` ``guard.*``); answers come back
    as the SDK's own types with placeholders restored. ``routes`` (glob patterns over the
    path) replaces the guarded routes.

    >>> client = wrap(OpenAI(), policy="payments")  # doctest: +SKIP
    """
    table = Routes(tuple(routes)) if routes is not None else DEFAULT_ROUTES
    return wrap_client(client, GuardSource(guard, load(policy)), table)


@overload
def protect(fn: F, /, *, guard: Guard | None = None) -> F: ...


@overload
def protect(fn: None = None, /, *, user: str | None = None, purpose: str | None = None,
            tags: Iterable[str] | None = None, policy: PolicyLike | None = None,
            guard: Guard | None = None) -> Callable[[F], F]: ...


def protect(fn: F | None = None, /, *, user: str | None = None, purpose: str | None = None,
            tags: Iterable[str] | None = None, policy: PolicyLike | None = None,
            guard: Guard | None = None) -> F | Callable[[F], F]:
    """Guard every OpenAI SDK call the decorated function makes, and attribute it.

    The audit record of each call carries ``context = {"function": <qualname>, "user",
    "purpose", "tags"}`` and the principal ``user:<user>``. Plain clients created inside
    are guarded as well as wrapped ones (see :mod:`guard.sdk.hook` for which).

    >>> @protect(user="u1", purpose="support")  # doctest: +SKIP
    ... async def answer(question: str) -> str: ...
    """
    protector = Protector(GuardSource(guard, load(policy)), user=user, purpose=purpose, tags=tags)
    return protector(fn) if fn is not None else protector


def context(*, user: str | None = None, purpose: str | None = None,
            tags: Iterable[str] | None = None, policy: PolicyLike | None = None,
            guard: Guard | None = None) -> GuardContext:
    """``protect`` for a block: ``with context(user="u1"):`` (or ``async with``).

    >>> with context(user="u1", purpose="batch"):  # doctest: +SKIP
    ...     client.chat.completions.create(...)
    """
    return GuardContext(Scope(GuardSource(guard, load(policy)), user=user, purpose=purpose,
                              tags=as_tags(tags)))
