"""Thresholds, timeout and error reporting around one moderation provider.

The :class:`Moderator` turns a provider's scores into a :class:`~guard.values.ModerationVerdict`.
It never raises because the provider failed: a failure is a verdict with outcome ``error``
and a short PII-free reason, and the caller decides what that means (``on_error``). That way
a moderation outage can never be mistaken for a pass, nor crash a request.

With ``on_error="local"`` the moderator answers a failure itself: it checks again with the
offline ``local`` model and returns a :class:`FallbackVerdict`, which says which provider
failed and how, so the audit record shows a degraded check, never a normal pass.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Literal, get_args

from guard.errors import ConfigError, ModerationUnavailable
from guard.moderation.base import CATEGORIES, ModerationProvider, ProviderScores
from guard.moderation.breaker import OPEN_ERROR, CircuitBreaker
from guard.values import ModerationVerdict

logger = logging.getLogger(__name__)

OnError = Literal["block", "allow", "local"]
DEFAULT_THRESHOLD = 0.5

_KIND = re.compile(r"[a-z0-9_]{1,40}")
_ORDER = {name: i for i, name in enumerate(CATEGORIES)}


@dataclass(frozen=True, slots=True)
class FallbackVerdict(ModerationVerdict):
    """A verdict given by the fallback provider because the configured one failed.

    ``provider``, ``outcome``, ``categories`` and ``scores`` are the fallback's; ``error`` is
    the failed provider's error kind (``timeout``, ``http_500``, ...), so queries for errors
    still find the outage; ``failed_provider`` names it; ``latency_ms`` covers both attempts.
    """

    failed_provider: str = ""

    @property
    def fallback(self) -> str:
        return self.provider


class Moderator:
    """Checks texts and images against per-category thresholds with one provider.

    ``thresholds`` maps ``"default"`` and category names to scores in [0, 1]; a category is
    flagged when its score is at or over its own threshold, else the default (0.5 when not
    given). ``timeout_s`` bounds the whole check, whatever the provider does. ``on_error``
    is kept for the caller: ``block`` treats an error verdict as a block, ``allow`` lets the
    request through (the verdict still says ``error``). ``local`` re-checks with ``fallback``
    (by default the offline ``local`` model with the same thresholds) and returns a
    :class:`FallbackVerdict`; should the fallback fail too, the error verdict stands and the
    caller blocks as for ``block``. With a ``breaker``, a provider that keeps failing is not
    called until its cool-down ends: checks meanwhile fail at once with ``circuit_open``.

    Example::

        moderator = Moderator(LocalModeration(), thresholds={"default": 0.5,
                                                             "self-harm/intent": 0.2})
        verdict = await moderator.check(["I want to kill myself tonight"])
        verdict.outcome, "self-harm/intent" in verdict.categories  # ("flagged", True)
    """

    def __init__(
        self,
        provider: ModerationProvider,
        *,
        thresholds: Mapping[str, float] | None = None,
        timeout_s: float = 2.0,
        on_error: OnError = "block",
        fallback: Moderator | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        thresholds = dict(thresholds) if thresholds is not None else {}
        unknown = sorted(k for k in thresholds if k != "default" and k not in _ORDER)
        if unknown:
            raise ConfigError(
                f"unknown moderation categor{'y' if len(unknown) == 1 else 'ies'} "
                f"{', '.join(unknown)}; valid keys: default, {', '.join(CATEGORIES)}"
            )
        for key, value in thresholds.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                0.0 <= value <= 1.0
            ):
                raise ConfigError(
                    f"moderation threshold {key!r} must be a number from 0 to 1, got {value!r}"
                )
        if isinstance(timeout_s, bool) or not (
            isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and timeout_s > 0
        ):
            raise ConfigError(f"moderation timeout_s must be > 0 seconds, got {timeout_s!r}")
        if on_error not in get_args(OnError):
            raise ConfigError(
                f"moderation on_error must be 'block', 'allow' or 'local', got {on_error!r}")
        self.provider = provider
        self.default_threshold = float(thresholds.pop("default", DEFAULT_THRESHOLD))
        self.thresholds: Mapping[str, float] = MappingProxyType(
            {k: float(v) for k, v in thresholds.items()}
        )
        self.timeout_s = float(timeout_s)
        self.on_error: OnError = on_error
        if on_error == "local" and fallback is None:
            from guard.moderation.local import LocalModeration

            fallback = Moderator(LocalModeration(), thresholds=thresholds | {
                "default": self.default_threshold}, timeout_s=self.timeout_s)
        self.fallback = fallback if on_error == "local" else None
        self.breaker = breaker

    def __repr__(self) -> str:
        return (
            f"Moderator(provider={self.provider.name!r}, default={self.default_threshold}, "
            f"overrides={dict(self.thresholds)!r}, timeout_s={self.timeout_s}, "
            f"on_error={self.on_error!r})"
        )

    def threshold(self, category: str) -> float:
        """The threshold that applies to ``category``."""
        return self.thresholds.get(category, self.default_threshold)

    async def aclose(self) -> None:
        """Close the HTTP clients of the provider (and of the fallback) opened on this loop."""
        for moderator in (self, self.fallback):
            close = getattr(moderator and moderator.provider, "aclose", None)
            if close is not None:
                await close()

    async def check(
        self,
        texts: Sequence[str],
        images: Sequence[str] = (),
        *,
        api_key: str | None = None,
    ) -> ModerationVerdict:
        """Moderate ``texts`` and ``images`` (URLs or data URLs) in one provider call.

        Blank texts are dropped; with nothing left the verdict is ``pass`` and the provider
        is not called. Provider failures come back as outcome ``error`` with ``error`` set to
        the failure kind (``timeout``, ``connection``, ``http_503``, ``bad_response``, ...).
        """
        texts = [t for t in texts if t and not t.isspace()]
        images = [i for i in images if i]
        name = self.provider.name
        if not texts and not images:
            return ModerationVerdict(provider=name, outcome="pass")
        started = time.perf_counter()
        breaker = self.breaker
        if breaker is not None and not breaker.allow():
            return await self._error(OPEN_ERROR, started, texts, images)
        kind: str | None = None
        try:
            result = await asyncio.wait_for(
                self.provider.score(texts, images, api_key=api_key), self.timeout_s
            )
            _validate(result)
        except TimeoutError:
            kind = "timeout"
        except ModerationUnavailable as exc:
            kind = exc.kind if _KIND.fullmatch(exc.kind) else "provider_error"
        except Exception as exc:  # a provider bug must not take the request down
            # Only the type: a message could quote the input.
            logger.error("moderation provider %r failed: %s", name, type(exc).__name__)
            kind = "provider_error"
        except BaseException:  # cancelled: no outcome, so the probe (if any) is free again
            if breaker is not None:
                breaker.release()
            raise
        if breaker is not None:
            breaker.record(success=kind is None, kind=kind)
        if kind is not None:
            return await self._error(kind, started, texts, images)
        latency_ms = _ms_since(started)

        if result.skipped:
            return ModerationVerdict(provider=name, outcome="skipped", latency_ms=latency_ms)
        flagged = [c for c, s in result.scores.items() if s >= self.threshold(c)]
        ranked = sorted(result.scores.items(), key=lambda cs: (-cs[1], _rank(cs[0])))
        return ModerationVerdict(
            provider=name,
            outcome="flagged" if flagged else "pass",
            categories=tuple(sorted(flagged, key=_rank)),
            scores={c: round(s, 4) for c, s in ranked},
            unevaluated=tuple(sorted(result.unevaluated)),
            latency_ms=latency_ms,
        )

    async def _error(self, kind: str, started: float, texts: Sequence[str],
                     images: Sequence[str]) -> ModerationVerdict:
        failed = ModerationVerdict(
            provider=self.provider.name,
            outcome="error",
            error=kind,
            latency_ms=_ms_since(started),
        )
        if self.fallback is None:
            return failed
        second = await self.fallback.check(texts, images)
        if second.outcome == "error":
            return failed
        values = {f.name: getattr(second, f.name) for f in fields(ModerationVerdict)}
        values.update(error=kind, latency_ms=_ms_since(started))
        return FallbackVerdict(**values, failed_provider=self.provider.name)


def _validate(result: object) -> None:
    """A third-party provider's answer must be usable before any threshold is applied."""
    if not isinstance(result, ProviderScores):
        raise ModerationUnavailable("bad_response", "provider did not return ProviderScores")
    for score in result.scores.values():
        if isinstance(score, bool) or not isinstance(score, int | float) or not (
            math.isfinite(score) and 0.0 <= score <= 1.0
        ):
            raise ModerationUnavailable("bad_response", "score outside [0, 1]")


def _rank(category: str) -> tuple[int, str]:
    """API order for known categories, then any new ones alphabetically."""
    return (_ORDER.get(category, len(_ORDER)), category)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)
