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

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from guard.audit import AuditLogger, AuditSink, AuditWriter, open_sink
from guard.call import Call
from guard.injection.rules import InputRules
from guard.moderation import CircuitBreaker, Moderator, build_provider
from guard.ops.hooks import CallObserver
from guard.policy import ModerationCheck, OutputRule, Policy, RuleCondition, load_policy
from guard.redact import canonical_value
from guard.rules import OutputRules
from guard.settings import DEFAULT_AUDIT_SINK, Settings
from guard.values import ModerationVerdict, Span

if TYPE_CHECKING:
    from guard.pii import PiiDetector
    from guard.sdk import GuardContext

ClientT = TypeVar("ClientT")

log = logging.getLogger("guard")

OUTPUT_MODERATION_RULE = "output-moderation"


class Guard:
    """Everything one policy needs, built once: detector, input rules, moderators, output
    rules, audit writer."""

    # The parts a policy is made of; replaced together by ``reload`` (see ``_install``).
    policy: Policy
    detector: PiiDetector
    input_rules: InputRules
    input_moderator: Moderator | None
    rules: OutputRules
    output_moderator: Moderator | None
    _allowed: dict[str, frozenset[str]]

    def __init__(
        self,
        policy: Policy,
        settings: Settings,
        *,
        detector: PiiDetector | None = None,
        audit_sink: AuditSink | None = None,
    ) -> None:
        self.settings = settings
        self._install(policy, detector)
        self.observers: list[CallObserver] = []
        """Told about every call (see :meth:`observe`)."""
        self.audit_sink_url = settings.audit_sink or policy.audit.sink or DEFAULT_AUDIT_SINK
        sink = audit_sink if audit_sink is not None else open_sink(self.audit_sink_url)
        self.audit_writer = AuditWriter(sink)
        self.audit = AuditLogger(self.audit_writer)

    def _install(self, policy: Policy, detector: PiiDetector | None = None) -> None:
        """Build everything ``policy`` needs, then switch to it in one step.

        Building may fail (a bad regex, an unknown provider): then nothing has changed.
        Safe to run in a worker thread while calls go on (see the switch below).
        """
        from guard.pii import get_detector  # heavy: spaCy and Presidio load here, once

        detector = detector or get_detector(self.settings.spacy_model or policy.pii.model)
        if self.settings.warm_up and not detector.warmed:
            detector.warm_up()
        if self.settings.pii_processes:
            detector.use_processes(self.settings.pii_processes)  # process-wide, like the model
        input_rules = InputRules(policy.input.rules)  # loads the injection model if used
        input_moderator = self._moderator(policy.moderation.input)
        rules = list(policy.output.rules)
        if policy.moderation.output is not None and not any(r.when.moderation for r in rules):
            rules.append(OutputRule(
                id=OUTPUT_MODERATION_RULE,
                when=RuleCondition(moderation=True),
                action="block",
                message="The answer was withheld by output moderation.",
            ))
        output_rules = OutputRules(rules)
        output_moderator = (
            self._moderator(policy.moderation.output or policy.moderation.input or ModerationCheck())
            if output_rules.needs_moderation else None
        )
        # One dict update: atomic for other threads and coroutines alike (``call`` copies
        # the guard, so a call sees all of the old policy's parts or all of the new one's).
        self.__dict__.update({
            "policy": policy, "detector": detector, "input_rules": input_rules,
            "input_moderator": input_moderator, "rules": output_rules,
            "output_moderator": output_moderator, "_allowed": {},
        })

    def reload(self, policy: str | Path | Policy) -> Policy:
        """Switch to a new policy without a restart; calls already running keep the old one.

        Raises :class:`~guard.errors.PolicyError` / :class:`~guard.errors.ConfigError` when
        the new policy does not load or its parts cannot be built; the old policy then stays
        in force. The audit trail (its sink and hash chain) is kept: a changed ``audit.sink``
        takes effect at the next start only (logged). Each audit record names the policy
        that decided it (``policy.sha256``).

        >>> guard.reload("policies/support.yaml")  # doctest: +SKIP
        """
        loaded = policy if isinstance(policy, Policy) else load_policy(policy)
        old = self.policy
        same_model = (self.settings.spacy_model or loaded.pii.model) == (
            self.settings.spacy_model or old.pii.model)
        self._install(loaded, self.detector if same_model else None)
        if (loaded.audit.sink or None) != (old.audit.sink or None) and not self.settings.audit_sink:
            log.warning("policy reload: audit.sink changed in %s; the audit trail keeps its "
                        "current sink until the next start", loaded.source)
        return loaded

    def observe(self, observer: CallObserver) -> None:
        """Tell ``observer`` about every call of this guard (streams, finished records)."""
        self.observers.append(observer)

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
        batch: Mapping[str, Any] | None = None,
    ) -> Call:
        """Start one guarded call; exactly one audit record is written when it ends.

        ``batch`` ties the record of one batch line to its batch (see ``guard.batch``).
        """
        # The call keeps the policy it started with, even if the guard reloads meanwhile.
        return Call(copy.copy(self), route=route, api_key=api_key, user=user, context=context,
                    batch=batch)

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

    async def aclose_clients(self) -> None:
        """Close the moderation HTTP clients opened on the running loop, at once rather than
        when the loop shuts down (a server's shutdown, once its requests have finished)."""
        for moderator in (self.input_moderator, self.output_moderator):
            if moderator is not None:
                await moderator.aclose()  # the loop's shared client: a second close is a no-op

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
