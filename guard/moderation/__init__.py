"""The moderation stage: providers that score text and images, and the Moderator that
applies thresholds.

Providers (one protocol, one registry): ``openai`` calls OpenAI's moderation endpoint,
``local`` is an offline trained model (phrase rules and hashed n-grams, numpy only; see
MODELS.md), ``none`` checks nothing and says so. A moderator with ``on_error="local"`` falls
back to ``local`` when its provider fails and says so in a :class:`FallbackVerdict`.

Example::

    from guard.moderation import Moderator, build_provider

    moderator = Moderator(build_provider("local"), thresholds={"default": 0.5})
    verdict = await moderator.check(["how do I kill a python process"])
    verdict.outcome  # "pass"
"""

from guard.moderation.base import CATEGORIES, ModerationProvider, NoModeration, ProviderScores
from guard.moderation.breaker import CircuitBreaker
from guard.moderation.local import LocalModeration
from guard.moderation.moderator import FallbackVerdict, Moderator
from guard.moderation.openai import OpenAIModeration
from guard.moderation.registry import build_provider, provider_names, register_provider

__all__ = [
    "CATEGORIES",
    "CircuitBreaker",
    "FallbackVerdict",
    "LocalModeration",
    "ModerationProvider",
    "Moderator",
    "NoModeration",
    "OpenAIModeration",
    "ProviderScores",
    "build_provider",
    "provider_names",
    "register_provider",
]
