"""Small immutable values passed between the pipeline's stages.

Stages exchange these instead of tuples or dicts so every contract has a name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Decision = Literal["allow", "redact", "warn", "block"]
"""What Guard did with a call, in increasing order of severity."""

DECISION_ORDER: tuple[Decision, ...] = ("allow", "warn", "redact", "block")


def most_severe(*decisions: Decision) -> Decision:
    """The most severe of ``decisions`` (``allow`` when given none)."""
    return max(decisions, key=DECISION_ORDER.index, default="allow")


@dataclass(frozen=True, slots=True)
class Span:
    """One detected entity: ``text[start:end]`` in the text that was analysed."""

    start: int
    end: int
    label: str
    score: float

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"empty or negative span {self.start}:{self.end}")


@dataclass(frozen=True, slots=True)
class ModerationVerdict:
    """What a moderation check concluded about one set of texts and images.

    ``outcome`` is ``pass``, ``flagged`` or ``error``; an error is never reported as a pass.
    ``categories`` are the categories at or over their threshold, ``scores`` the highest
    scores seen (category → score), ``unevaluated`` the categories the provider could not
    judge for some input (for example most categories for images).
    """

    provider: str
    outcome: Literal["pass", "flagged", "error", "skipped"]
    categories: tuple[str, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict)
    unevaluated: tuple[str, ...] = ()
    error: str | None = None
    latency_ms: float = 0.0

    @property
    def flagged(self) -> bool:
        return self.outcome == "flagged"


@dataclass(frozen=True, slots=True)
class Finding:
    """One PII value found in a request, described without the value itself.

    ``param`` names the text it was found in (``messages[1].content``); ``start``/``end`` are
    offsets into that text; ``replacement`` is what was written instead (a placeholder, a
    mask, or ``None`` when the value was kept).
    """

    param: str
    start: int
    end: int
    label: str
    score: float
    action: str
    replacement: str | None
