"""The engine: one :class:`Guard` per policy, built once, shared by every call.

Adapters (proxy, middleware, SDK wrapper) only ever do this::

    guard = Guard.from_policy("policies/support.yaml")
    async with guard.call(route="/v1/chat/completions", api_key=key) as call:
        verdict = await call.check_request(body)
        if verdict.blocked:
            ...                      # answer with verdict.code / verdict.message
        answer = ...                 # send verdict.body upstream
        checked = await call.check_response(answer)
        ...                          # return checked.body

The engine does no network I/O of its own beyond the moderation provider; its CPU work
(NER) runs off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from guard.audit import AuditLogger, AuditSink, AuditWriter, open_sink
from guard.call import Call
from guard.injection.rules import InputRules
from guard.moderation import CircuitBreaker, Moderator, build_provider
from guard.policy import ModerationCheck, OutputRule, Policy, RuleCondition, load_policy
from guard.redact import canonical_value
from guard.rules import OutputRules
from guard.settings import DEFAULT_AUDIT_SINK, Settings
from guard.values import ModerationVerdict, Span

if TYPE_CHECKING:
    from guard.pii import PiiDetector
    from guard.sdk import GuardContext

ClientT = TypeVar("ClientT")

OUTPUT_MODERATION_RULE = "output-moderation"


class Guard:
    """Everything one policy needs, built once: detector, input rules, moderators, output
    rules, audit writer."""

    def __init__(
        self,
        policy: Policy,
        settings: Settings,
        *,
        detector: PiiDetector | None = None,
        audit_sink: AuditSink | None = None,
    ) -> None:
        from guard.pii import get_detector  # heavy: spaCy and Presidio load here, once

        self.policy = policy
        self.settings = settings
        self.detector = detector or get_detector(settings.spacy_model or policy.pii.model)
        if settings.warm_up:
            self.detector.warm_up()
        self.input_rules = InputRules(policy.input.rules)  # loads the injection model if used
        self.input_moderator = self._moderator(policy.moderation.input)
        rules = list(policy.output.rules)
        if policy.moderation.output is not None and not any(r.when.moderation for r in rules):
            rules.append(OutputRule(
                id=OUTPUT_MODERATION_RULE,
                when=RuleCondition(moderation=True),
                action="block",
                message="The answer was withheld by output moderation.",
            ))
        self.rules = OutputRules(rules)
        self.output_moderator = (
            self._moderator(policy.moderation.output or policy.moderation.input or ModerationCheck())
            if self.rules.needs_moderation else None
        )
        self.audit_sink_url = settings.audit_sink or policy.audit.sink or DEFAULT_AUDIT_SINK
        sink = audit_sink if audit_sink is not None else open_sink(self.audit_sink_url)
        self.audit_writer = AuditWriter(sink)
        self.audit = AuditLogger(self.audit_writer)
        self._allowed: dict[str, frozenset[str]] = {}

    @classmethod
    def from_policy(
        cls,
        policy: str | Path | Policy | None = None,
        *,
        detector: PiiDetector | None = None,
        audit_sink: AuditSink | None = None,
        **settings: Any,
    ) -> Guard:
        """Build a guard from a policy file, a shipped pack name or a :class:`Policy`.

        ``settings`` override the environment (see :class:`guard.settings.Settings`), e.g.
        ``Guard.from_policy("default", audit_sink=MemorySink(), upstream_url=...)``.

        >>> guard = Guard.from_policy("default")  # doctest: +SKIP
        """
        loaded = policy if isinstance(policy, Policy) else load_policy(policy or "default")
        return cls(loaded, Settings.from_env(**settings), detector=detector, audit_sink=audit_sink)

    def call(
        self,
        *,
        route: str = "/v1/chat/completions",
        api_key: str | None = None,
        user: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Call:
        """Start one guarded call; exactly one audit record is written when it ends."""
        return Call(self, route=route, api_key=api_key, user=user, context=context)

    def _moderator(self, check: ModerationCheck | None) -> Moderator | None:
        if check is None:
            return None
        name = self.settings.moderation_provider or check.provider
        options: dict[str, Any] = {}
        if name == "openai":
            options = {
                "base_url": (check.base_url or self.settings.upstream_url).rstrip("/"),
                "api_key": self.settings.api_key,
                "model": check.model,
                "timeout_s": check.timeout_s,
            }
        provider = build_provider(name, **options)
        breaker = None
        if name == "openai" and check.circuit_breaker.enabled:
            breaker = CircuitBreaker(failures=check.circuit_breaker.failures,
                                     cooldown_s=check.circuit_breaker.cooldown_s)
        return Moderator(provider, thresholds=check.thresholds, timeout_s=check.timeout_s,
                         on_error=check.on_error, breaker=breaker)

    async def detect(self, texts: Sequence[str], entities: Sequence[str]) -> list[list[Span]]:
        """PII spans per text (non-overlapping), with the policy's ``min_score``."""
        if not texts or not entities:
            return [[] for _ in texts]
        return await self.detector.analyze_many(texts, entities, self.policy.pii.min_score)

    def is_allowed(self, label: str, value: str) -> bool:
        """True when ``value`` is on the policy's allow-list (compared like placeholders)."""
        if not self.policy.pii.allow:
            return False
        allowed = self._allowed.get(label)
        if allowed is None:
            allowed = frozenset(canonical_value(label, a) for a in self.policy.pii.allow)
            self._allowed[label] = allowed
        return canonical_value(label, value) in allowed

    async def moderate_output(self, texts: Sequence[str], api_key: str | None) -> ModerationVerdict:
        assert self.output_moderator is not None
        return await self.output_moderator.check(texts, api_key=api_key)

    def close(self) -> None:
        """Flush the audit trail. Safe to call more than once."""
        self.audit_writer.close()

    # -- around OpenAI SDK calls (thin: see guard.sdk) ------------------------------------

    def wrap(self, client: ClientT, *, policy: str | Path | Policy | None = None) -> ClientT:
        """A copy of an OpenAI SDK client whose calls go through this guard.

        >>> client = guard.wrap(OpenAI())  # doctest: +SKIP
        """
        from guard.sdk import wrap

        return wrap(client, policy=policy, guard=self)

    def protect(self, fn: Callable[..., Any] | None = None, *, user: str | None = None,
                purpose: str | None = None, tags: Sequence[str] | None = None,
                policy: str | Path | Policy | None = None) -> Any:
        """Decorator: every SDK call the function makes is guarded and attributed.

        >>> @guard.protect(user="u1", purpose="support")  # doctest: +SKIP
        ... def answer(question: str) -> str: ...
        """
        from guard.sdk import protect

        if fn is not None:
            return protect(fn, guard=self)
        return protect(user=user, purpose=purpose, tags=tags, policy=policy, guard=self)

    def context(self, *, user: str | None = None, purpose: str | None = None,
                tags: Sequence[str] | None = None,
                policy: str | Path | Policy | None = None) -> GuardContext:
        """``with guard.context(user="u1"):`` — ``protect`` for a block (also ``async with``)."""
        from guard.sdk import context

        return context(user=user, purpose=purpose, tags=tags, policy=policy, guard=self)
