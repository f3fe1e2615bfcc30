"""The registry of moderation providers: a policy names one, :func:`build_provider` builds it.

An unknown name or option fails here, at start-up, with the list of what is allowed, never
while serving.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from guard.errors import ConfigError
from guard.moderation.base import ModerationProvider, NoModeration
from guard.moderation.local import LocalModeration
from guard.moderation.openai import OpenAIModeration

ProviderFactory = Callable[..., ModerationProvider]

_PROVIDERS: dict[str, ProviderFactory] = {
    "local": LocalModeration,
    "none": NoModeration,
    "openai": OpenAIModeration,
}


def provider_names() -> tuple[str, ...]:
    """Registered provider names, sorted."""
    return tuple(sorted(_PROVIDERS))


def register_provider(name: str, factory: ProviderFactory) -> None:
    """Make ``name`` usable in policies; ``factory(**options)`` builds the provider.

    Example::

        register_provider("acme", AcmeModeration)
        build_provider("acme", endpoint="https://moderation.acme.internal")
    """
    if not name or name in _PROVIDERS:
        raise ConfigError(f"moderation provider name {name!r} is empty or already registered")
    _PROVIDERS[name] = factory


def build_provider(name: str, **options: Any) -> ModerationProvider:
    """Build the provider registered as ``name`` with keyword ``options``.

    Example::

        build_provider("openai", base_url="https://api.openai.com/v1", api_key=key)
        build_provider("local")
    """
    factory = _PROVIDERS.get(name)
    if factory is None:
        raise ConfigError(
            f"unknown moderation provider {name!r}; known: {', '.join(provider_names())}"
        )
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        raise ConfigError(f"moderation provider {name!r}: {exc}") from None
    except ValueError:  # no signature to inspect (a builtin): let the call decide
        pass
    return factory(**options)
