"""The protect scope: who is calling and why, carried by a context variable.

``@protect`` and ``context()`` enter a :class:`Scope`; the SDK transports read it for each
request. A context variable gives every thread and every asyncio task its own value (a task
starts with a copy of its creator's), so concurrent and nested calls never see each other's
user. Entering a scope inside another inherits what the inner one leaves unset::

    with entered(Scope(source, user="u1", purpose="support")):
        with entered(Scope(source, function="answer")):
            current().user        # "u1": inherited
            current().function    # "answer"
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from guard.sdk.guards import GuardSource


@dataclass(frozen=True)
class Scope:
    """What the audit record of each SDK call made inside says about its caller."""

    source: GuardSource
    user: str | None = None
    purpose: str | None = None
    tags: tuple[str, ...] | None = None
    function: str | None = None

    @property
    def policy_override(self) -> bool:
        """True when this scope names its own policy (it then wins over a wrapped client's)."""
        return self.source.policy is not None

    def record(self) -> dict[str, Any]:
        """The ``context`` field of the audit record."""
        return {"function": self.function, "user": self.user, "purpose": self.purpose,
                "tags": list(self.tags or ())}

    def within(self, outer: Scope | None) -> Scope:
        """This scope entered inside ``outer``: unset fields are inherited from it."""
        if outer is None:
            return self
        keep_outer_source = (self.source.policy is None
                             and self.source.parent is outer.source.parent)
        return Scope(
            source=outer.source if keep_outer_source else self.source,
            user=self.user if self.user is not None else outer.user,
            purpose=self.purpose if self.purpose is not None else outer.purpose,
            tags=self.tags if self.tags is not None else outer.tags,
            function=self.function if self.function is not None else outer.function,
        )


_current: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "guard_sdk_scope", default=None)


def current() -> Scope | None:
    """The innermost scope of this thread or task, ``None`` outside any."""
    return _current.get()


def push(scope: Scope) -> contextvars.Token[Scope | None]:
    """Make ``scope`` (merged with the current one) current; undo with :func:`pop`."""
    return _current.set(scope.within(_current.get()))


def pop(token: contextvars.Token[Scope | None]) -> None:
    _current.reset(token)


@contextmanager
def entered(scope: Scope) -> Iterator[Scope]:
    """Make ``scope`` (merged with the current one) current until the block ends."""
    token = push(scope)
    try:
        yield _current.get() or scope
    finally:
        pop(token)
