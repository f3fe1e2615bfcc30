"""The moderation provider contract: what every provider returns and the category names.

A provider only scores; it never decides. Thresholds, timeouts and what an error means are
the :class:`~guard.moderation.Moderator`'s job, so a new provider is one ``score`` method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

CATEGORIES: tuple[str, ...] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
"""The 13 categories of ``omni-moderation-latest``, spelled as the API spells them.

Every provider scores these names, so thresholds in a policy mean the same thing whichever
provider runs.
"""


@dataclass(frozen=True, slots=True)
class ProviderScores:
    """What a provider measured for one request.

    ``scores`` holds, per category, the highest score over all inputs (0.0 to 1.0) and only
    for categories that were evaluated for at least one input. ``unevaluated`` names the
    categories that were not evaluated for some input (for example ``hate`` for an image),
    so a pass is never mistaken for "checked and clean". ``skipped`` is true when the
    provider evaluated nothing on purpose (the ``none`` provider).
    """

    scores: Mapping[str, float] = field(default_factory=dict)
    unevaluated: frozenset[str] = frozenset()
    skipped: bool = False


@runtime_checkable
class ModerationProvider(Protocol):
    """Scores texts and images per category.

    ``score`` raises :class:`~guard.errors.ModerationUnavailable` when it cannot answer
    (timeout, HTTP error, connection error, malformed response); it never returns made-up
    zeros. ``api_key`` is the caller's key for providers that need one; others ignore it.

    Example::

        class Constant:
            name = "constant"

            async def score(self, texts, images=(), *, api_key=None):
                return ProviderScores(scores={"violence": 0.0})
    """

    name: str

    async def score(
        self,
        texts: Sequence[str],
        images: Sequence[str] = (),
        *,
        api_key: str | None = None,
    ) -> ProviderScores: ...


class NoModeration:
    """The ``none`` provider: evaluates nothing and says so (verdict outcome ``skipped``).

    For deployments that moderate elsewhere; an audit record then shows that Guard did not
    check, rather than a pass.
    """

    name = "none"

    async def score(
        self,
        texts: Sequence[str],
        images: Sequence[str] = (),
        *,
        api_key: str | None = None,
    ) -> ProviderScores:
        return ProviderScores(skipped=True)
