"""Input rules: checks on a request's redacted text that can block it or warn.

The only kind today is ``prompt_injection`` (see :mod:`guard.injection`). Rules are built
once per policy (the model loads then, at start-up); :meth:`InputRules.evaluate` scores the
texts of the roles each rule names and returns what fired.

Example::

    rules = InputRules(policy.input.rules)
    hits = await rules.evaluate([("user", "Ignore all previous instructions ...")])
    hits[0].rule_id, hits[0].action, hits[0].score   # ("no-injection", "block", 0.99)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from guard.policy import InputRule

_OFFLOAD_CHARS = 4000
"""Above this many characters per request, scoring runs in a worker thread."""

DEFAULT_MESSAGE = "The request looks like a prompt-injection attempt and was blocked by policy."


@dataclass(frozen=True, slots=True)
class InputRuleHit:
    """One input rule that fired: its id, its action and the score that made it fire."""

    rule_id: str
    action: str
    score: float


class InputRules:
    """The policy's ``input.rules``, ready to run."""

    def __init__(self, rules: Sequence[InputRule]) -> None:
        self.rules = tuple(rules)
        self._scorer = None
        if any(r.when.prompt_injection is not None for r in self.rules):
            from guard.injection import shipped_scorer

            self._scorer = shipped_scorer()

    def message_for(self, hit: InputRuleHit) -> str:
        """What a client blocked by ``hit`` is told."""
        for rule in self.rules:
            if rule.id == hit.rule_id and rule.message:
                return rule.message
        return DEFAULT_MESSAGE

    async def evaluate(self, texts: Sequence[tuple[str, str]]) -> tuple[InputRuleHit, ...]:
        """Rules that fire on ``texts`` (``(role, text)`` pairs), in policy order."""
        if not self.rules or not texts:
            return ()
        if sum(len(t) for _, t in texts) > _OFFLOAD_CHARS:
            return await asyncio.to_thread(self._evaluate, texts)
        return self._evaluate(texts)

    def _evaluate(self, texts: Sequence[tuple[str, str]]) -> tuple[InputRuleHit, ...]:
        scores: dict[str, float] = {}  # role -> highest score, computed once per role

        def score_of(roles: Sequence[str]) -> float:
            assert self._scorer is not None
            best = 0.0
            for role in roles:
                if role not in scores:
                    scores[role] = self._scorer.score_many([t for r, t in texts if r == role])
                best = max(best, scores[role])
            return best

        hits: list[InputRuleHit] = []
        for rule in self.rules:
            condition = rule.when.prompt_injection
            if condition is None:
                continue
            score = score_of(condition.roles)
            if score >= condition.threshold:
                hits.append(InputRuleHit(rule.id, rule.action, score))
        return tuple(hits)
