"""Output rules: find where an answer breaks a rule, and what the rule wants done about it.

Each condition kind (regex, keywords, pii, max_chars, moderation) is one small matcher
registered in ``MATCHERS``; a policy names a kind and validation has already checked it.
Rules look at the model's text *before* placeholders are restored: they judge what the model
wrote, and the user's own values (placeholders) come back untouched instead of being
redacted a second time.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from guard.policy import OutputRule, RuleCondition
from guard.redact import merge_ranges
from guard.values import ModerationVerdict, Span

DetectFn = Callable[[Sequence[str], Sequence[str]], Awaitable[list[list[Span]]]]
"""``(texts, entities) -> spans per text``: the shared PII analyzer."""
ModerateFn = Callable[[Sequence[str]], Awaitable[ModerationVerdict]]


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule matched one text at ``ranges`` (offsets into that text)."""

    rule_id: str
    action: str
    ranges: tuple[tuple[int, int], ...]
    entities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RulesOutcome:
    hits: tuple[tuple[RuleHit, ...], ...]
    """Hits per text, in the order of the texts given."""
    moderation: ModerationVerdict | None = None

    @property
    def all_hits(self) -> list[RuleHit]:
        return [hit for per_text in self.hits for hit in per_text]


@dataclass(frozen=True, slots=True)
class Analysis:
    """The costly part of checking texts (PII detection, moderation), done once.

    Matching the rules against an analysis is cheap, so a stream can analyse windows
    concurrently while it receives and match them in order when it releases text.
    """

    spans: tuple[tuple[Span, ...], ...]
    """PII spans per text (only the entities some rule asks for)."""
    moderation: ModerationVerdict | None = None


def _word_pattern(words: Sequence[str], case_sensitive: bool) -> re.Pattern[str]:
    # Lookarounds instead of \b so that keywords starting or ending in punctuation still work.
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", 0 if case_sensitive else re.IGNORECASE)


class OutputRules:
    """The compiled output rules of one policy (built once, used by every call)."""

    def __init__(self, rules: Sequence[OutputRule]) -> None:
        self.rules = tuple(rules)
        self._patterns: dict[str, re.Pattern[str]] = {}
        for rule in self.rules:
            cond = rule.when
            if cond.regex is not None:
                # A regex means exactly what it says; authors add (?i) when they want it.
                self._patterns[rule.id] = re.compile(cond.regex)
            elif cond.keywords is not None:
                self._patterns[rule.id] = _word_pattern(cond.keywords, cond.case_sensitive)

    @property
    def pii_entities(self) -> tuple[str, ...]:
        wanted: list[str] = []
        for rule in self.rules:
            for entity in rule.when.pii or ():
                if entity not in wanted:
                    wanted.append(entity)
        return tuple(wanted)

    @property
    def needs_moderation(self) -> bool:
        return any(rule.when.moderation not in (None, False) for rule in self.rules)

    async def evaluate(
        self,
        texts: Sequence[str],
        *,
        detect: DetectFn,
        moderate: ModerateFn | None,
    ) -> RulesOutcome:
        """Every rule over every text. Detection and moderation run once for all texts."""
        analysis = await self.analyze(texts, detect=detect, moderate=moderate)
        return RulesOutcome(tuple(self.match(text, analysis.spans[i], analysis.moderation)
                                  for i, text in enumerate(texts)), analysis.moderation)

    async def analyze(
        self,
        texts: Sequence[str],
        *,
        detect: DetectFn,
        moderate: ModerateFn | None,
    ) -> Analysis:
        """PII detection and moderation over ``texts``, the two running concurrently."""
        entities = self.pii_entities

        async def spans() -> list[list[Span]]:
            return await detect(texts, entities) if entities and texts else [[] for _ in texts]

        async def verdict() -> ModerationVerdict | None:
            return await moderate(texts) if moderate is not None and self.needs_moderation else None

        found, moderation = await asyncio.gather(spans(), verdict())
        return Analysis(tuple(tuple(s) for s in found), moderation)

    def match(self, text: str, spans: Sequence[Span],
              verdict: ModerationVerdict | None) -> tuple[RuleHit, ...]:
        """The rules that ``text`` breaks, given its PII ``spans`` and moderation ``verdict``."""
        hits = (self._match(rule, text, spans, verdict) for rule in self.rules)
        return tuple(hit for hit in hits if hit is not None)

    def is_moderation_rule(self, rule_id: str) -> bool:
        return any(r.id == rule_id and r.when.moderation not in (None, False) for r in self.rules)

    def _match(
        self,
        rule: OutputRule,
        text: str,
        spans: Sequence[Span],
        verdict: ModerationVerdict | None,
    ) -> RuleHit | None:
        cond: RuleCondition = rule.when
        ranges: list[tuple[int, int]] = []
        entities: list[str] = []
        if rule.id in self._patterns:
            ranges = [m.span() for m in self._patterns[rule.id].finditer(text) if m.end() > m.start()]
        elif cond.pii is not None:
            for span in spans:
                if span.label in cond.pii:
                    ranges.append((span.start, span.end))
                    entities.append(span.label)
        elif cond.max_chars is not None:
            if len(text) > cond.max_chars:
                ranges = [(cond.max_chars, len(text))]
        elif cond.moderation not in (None, False) and verdict is not None and verdict.flagged:
            wanted = cond.moderation if isinstance(cond.moderation, tuple) else verdict.categories
            if set(wanted) & set(verdict.categories) and text:
                ranges = [(0, len(text))]
        if not ranges:
            return None
        return RuleHit(rule.id, rule.action, tuple(merge_ranges(ranges)), tuple(entities))


def redact_ranges(text: str, hits: Sequence[RuleHit]) -> str:
    """``text`` with every range of a ``redact`` hit replaced by ``[REDACTED:<rule id>]``."""
    marked = sorted(
        (start, end, hit.rule_id) for hit in hits if hit.action == "redact"
        for start, end in hit.ranges
    )
    out: list[str] = []
    cursor = 0
    for start, end, rule_id in marked:
        if end <= cursor:
            continue
        start = max(start, cursor)
        out.append(text[cursor:start])
        out.append(f"[REDACTED:{rule_id}]")
        cursor = end
    out.append(text[cursor:])
    return "".join(out)
