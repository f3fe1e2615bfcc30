"""The moderation stage: providers that score text and images, and the Moderator that
applies thresholds.

Providers (one protocol, one registry): ``openai`` calls OpenAI's moderation endpoint,
``local`` is an offline lexicon-and-phrase classifier, ``none`` checks nothing and says so.

Example::

    from guard.moderation import Moderator, build_provider

    moderator = Moderator(build_provider("local"), thresholds={"default": 0.5})
    verdict = await moderator.check(["how do I kill a python process"])
    verdict.outcome  # "pass"
"""

from guard.moderation.base import CATEGORIES, ModerationProvider, NoModeration, ProviderScores
from guard.moderation.local import LocalModeration
from guard.moderation.moderator import Moderator
from guard.moderation.openai import OpenAIModeration
from guard.moderation.registry import build_provider, provider_names, register_provider

__all__ = [
    "CATEGORIES",
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
