"""One guarded call: input checks, output checks, and its one audit record.

A :class:`Call` holds everything that belongs to a single request — above all its
:class:`~guard.redact.PlaceholderMap` — and nothing that outlives it. Used as a context
manager (``async with`` or ``with``) it writes exactly one audit record when it ends, also
when the request fails, times out or the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from guard.errors import WireFormatError
from guard.injection.rules import InputRuleHit
from guard.moderation import FallbackVerdict
from guard.ops.hooks import notify
from guard.ops.tracing import CallTrace
from guard.pricing import cost_usd, usage_of
from guard.redact import PlaceholderMap, describe_counts, mask_for, rewrite
from guard.rules import Analysis, RuleHit, RulesOutcome, redact_ranges
from guard.values import Decision, Finding, ModerationVerdict, Span, most_severe
from guard.wire import WireFormat, api_for_route, wire_format
from guard.wire.slots import Extraction, TextSlot, replace_texts

if TYPE_CHECKING:
    from guard.engine import Guard
    from guard.moderation import Moderator
    from guard.stream import StreamGuard

IMAGE_TOO_LARGE = "guard.image_too_large"


@dataclass(frozen=True)
class InputVerdict:
    """What the input checks decided about a request body.

    ``body`` is what to send upstream: redacted under ``mode: enforce``, the original under
    ``mode: monitor``. ``blocked`` is true only when the request must not go upstream.
    """

    decision: Decision
    body: dict[str, Any]
    enforced: bool
    code: str | None = None
    message: str | None = None
    entities: Mapping[str, int] = field(default_factory=dict)
    moderation: ModerationVerdict | None = None
    findings: tuple[Finding, ...] = ()
    rule_hits: tuple[InputRuleHit, ...] = ()
    """Input rules that fired (``prompt_injection``), blocking or warning."""

    @property
    def blocked(self) -> bool:
        return self.enforced and self.decision == "block"


@dataclass(frozen=True)
class OutputVerdict:
    """What the output rules decided about a response body; ``body`` goes to the client."""

    decision: Decision
    body: dict[str, Any]
    enforced: bool
    rule_hits: tuple[RuleHit, ...] = ()
    moderation: ModerationVerdict | None = None

    @property
    def blocked(self) -> bool:
        return self.enforced and self.decision == "block"


class Call:
    """State of one request through the pipeline. Create it with :meth:`Guard.call`."""

    def __init__(
        self,
        guard: Guard,
        *,
        route: str,
        api_key: str | None,
        user: str | None,
        context: Mapping[str, Any] | None,
        batch: Mapping[str, Any] | None = None,
    ) -> None:
        self.guard = guard
        self.request_id = f"req_{uuid.uuid4().hex}"
        self.route = route
        self.wire: WireFormat = wire_format(api_for_route(route) or "chat")
        """The wire format of the call's bodies: by route, chat when the route says nothing."""
        self.api_key = api_key
        self.principal = _principal(guard.settings.principal_key, api_key, user)
        self.context = dict(context) if context else None
        self.batch = dict(batch) if batch else None
        """Ties a batch line's record to its batch (``input_file``, ``line``, ``phase``, ...)."""
        self.status = "ok"
        self.stream = False
        self.truncated = False
        self.model: str | None = None
        self.usage: dict[str, int] | None = None
        self.error: str | None = None
        self._placeholders = PlaceholderMap()
        self._started = time.perf_counter()
        self._ts = datetime.now(UTC)
        self._latency: dict[str, float] = {"pii": 0.0, "moderation": 0.0}
        self._input: InputVerdict | None = None
        self._output: OutputVerdict | None = None
        self._output_entities: Counter[str] = Counter()
        self._finished = False
        self._stream_open = False
        self.trace = CallTrace(route)
        """The call's spans (no-ops unless an OpenTelemetry SDK is configured)."""

    # -- input -------------------------------------------------------------------------

    async def check_request(self, body: Mapping[str, Any], api: str | None = None) -> InputVerdict:
        """Find and pseudonymise PII, run the input rules, then moderate the redacted text.

        The one entry point for every API: ``api`` (``chat``, ``responses``, ``embeddings``)
        names the body's wire format; by default the call's route decides
        (``guard.call(route="/v1/responses")``), chat when the route is not a known one.
        Raises :class:`~guard.errors.WireFormatError` for a body not of that format, and
        ``ValueError`` for an unknown ``api``.
        """
        if api is not None:
            self.wire = wire_format(api)
        wire = self.wire
        policy = self.guard.policy
        pii = policy.pii
        enforced = policy.mode == "enforce"
        self.model = body.get("model") if isinstance(body.get("model"), str) else None
        self.stream = body.get("stream") is True
        extraction = wire.extract_request(body)
        slots = extraction.texts
        limit = self.guard.settings.max_text_chars
        if sum(len(s.text) for s in slots) > limit:
            raise WireFormatError(
                f"The request carries more than {limit} characters of text, the limit of this "
                "Guard deployment; send less text per request.", param=_root(slots[0].param),
                code="guard.text_too_large")
        refused = self._check_images(body, extraction)
        if refused is not None:
            return self._keep_input(refused)

        with self._stage("pii"):
            spans = await self.guard.detect([s.text for s in slots], pii.detected_entities)

        counts: Counter[str] = Counter()
        blocked_entities: set[str] = set()
        changes: dict[TextSlot, str] = {}
        findings: list[Finding] = []
        for slot, found in zip(slots, spans, strict=True):
            kept = [s for s in found
                    if not self.guard.is_allowed(s.label, slot.text[s.start:s.end])]
            counts.update(s.label for s in kept)
            blocked_entities.update(s.label for s in kept
                                    if pii.action_for(s.label, wire.api) == "block")

            def replace(span: Span, slot: TextSlot = slot) -> str | None:
                new = self._replacement(span, slot.text)
                findings.append(Finding(slot.param, span.start, span.end, span.label,
                                        round(span.score, 4), pii.action_for(span.label, wire.api),
                                        new))
                return new

            new_text = rewrite(slot.text, kept, replace)
            if new_text != slot.text:
                changes[slot] = new_text
        redacted = replace_texts(body, changes) if changes else dict(body)
        entities = dict(counts)
        found_all = tuple(findings)

        if blocked_entities:
            verdict = InputVerdict(
                "block", dict(body), enforced, code="guard.pii", entities=entities,
                findings=found_all,
                message=("The request contains personal data that policy "
                         f"'{policy.name}' does not allow: {', '.join(sorted(blocked_entities))}."),
            )
            return self._keep_input(verdict)

        texts = [changes.get(slot, slot.text) for slot in slots]
        rule_hits: tuple[InputRuleHit, ...] = ()
        if self.guard.input_rules.rules and wire.moderated:
            with self._stage("input_rules"):
                rule_hits = await self.guard.input_rules.evaluate(
                    [(wire.role_of(body, slot), text) for slot, text in zip(slots, texts, strict=True)])
            blocking = [h for h in rule_hits if h.action == "block"]
            if blocking:
                verdict = InputVerdict(
                    "block", dict(body), enforced, code="guard.policy", entities=entities,
                    findings=found_all, rule_hits=rule_hits,
                    message=self.guard.input_rules.message_for(blocking[0]),
                )
                return self._keep_input(verdict)

        moderation: ModerationVerdict | None = None
        if self.guard.input_moderator is not None and wire.moderated:
            images = extraction.images if policy.images.action == "moderate" else ()
            with self._stage("moderation"):
                moderation = await self.guard.input_moderator.check(
                    texts, images, api_key=self._moderation_key)
            if moderation.flagged:
                verdict = InputVerdict(
                    "block", dict(body), enforced, code="guard.moderation", entities=entities,
                    moderation=moderation, findings=found_all, rule_hits=rule_hits,
                    message=("The request was flagged by moderation: "
                             f"{', '.join(moderation.categories)}."),
                )
                return self._keep_input(verdict)
            # on_error "local" whose fallback failed too: blocked like "block".
            if moderation.outcome == "error" and self.guard.input_moderator.on_error != "allow":
                verdict = InputVerdict(
                    "block", dict(body), enforced, code="guard.moderation_unavailable",
                    entities=entities, moderation=moderation, findings=found_all,
                    rule_hits=rule_hits,
                    message="The request could not be moderated right now; try again later.",
                )
                return self._keep_input(verdict)

        warned: tuple[Decision, ...] = ("warn",) if rule_hits else ()
        decision = most_severe("redact" if changes else "allow", *warned)
        verdict = InputVerdict(decision, redacted if enforced else dict(body), enforced,
                               entities=entities, moderation=moderation, findings=found_all,
                               rule_hits=rule_hits)
        return self._keep_input(verdict)

    def _check_images(self, body: Mapping[str, Any], extraction: Extraction) -> InputVerdict | None:
        """The policy's ``images``: a refusal (block, too large, unmoderatable), or ``None``."""
        if not extraction.image_inputs:
            return None
        policy = self.guard.policy
        images = policy.images
        enforced = policy.mode == "enforce"
        if images.action == "block":
            return InputVerdict("block", dict(body), enforced, code="guard.policy",
                                message=f"Policy '{policy.name}' does not allow images "
                                        f"({extraction.image_inputs[0].param}).")
        for image in extraction.image_inputs:
            url = image.url
            if url is not None and url.startswith("data:"):
                if len(url) > images.max_data_url_bytes:
                    return InputVerdict(
                        "block", dict(body), enforced, code=IMAGE_TOO_LARGE,
                        message=(f"{image.param} is a data URL of {len(url)} bytes; policy "
                                 f"'{policy.name}' allows at most {images.max_data_url_bytes} "
                                 "(images.max_data_url_bytes). Send a smaller image or an "
                                 "https URL."))
                if not url.startswith("data:image/"):
                    raise WireFormatError(f"{image.param} must be an image data URL "
                                          "(data:image/...;base64,...).", image.param)
            elif url is not None and not url.startswith(("https://", "http://")):
                raise WireFormatError(f"{image.param} must be an http(s) URL or a data URL.",
                                      image.param)
            elif url is None and images.action == "moderate":
                return InputVerdict(
                    "block", dict(body), enforced, code="guard.policy",
                    message=(f"{image.param}: an image given by file id cannot be moderated; "
                             "send it as a URL or data URL, or set 'images: allow' in policy "
                             f"'{policy.name}'."))
        return None

    def refuse(self, code: str, message: str) -> InputVerdict:
        """Block a request the engine cannot check (e.g. a batch line of an unsupported url):
        it is recorded as ``decision: block`` with ``code``, never passed on unchecked."""
        self.status = "rejected"
        return self._keep_input(InputVerdict("block", {}, True, code=code, message=message))

    @property
    def _moderation_key(self) -> str | None:
        # With a server key, the caller's key is a Guard client key, not an OpenAI key.
        return None if self.guard.settings.api_key else self.api_key

    def _replacement(self, span: Span, text: str) -> str | None:
        action = self.guard.policy.pii.action_for(span.label, self.wire.api)
        if action == "pseudonymize":
            return self._placeholders.placeholder_for(span.label, text[span.start:span.end])
        if action == "mask":
            return mask_for(span.label)
        return None  # block is decided on counts; allow keeps the value

    def _keep_input(self, verdict: InputVerdict) -> InputVerdict:
        self._input = verdict
        if self.stream and not verdict.blocked and not self._stream_open:
            self._stream_open = True
            notify(self.guard.observers, "stream_opened")
        return verdict

    @contextlib.contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Time one stage into ``latency_ms`` and trace it as a child span."""
        started = time.perf_counter()
        try:
            with self.trace.stage(name):
                yield
        finally:
            self._latency[name] = self._latency.get(name, 0.0) + _ms_since(started)

    # -- output ------------------------------------------------------------------------

    async def check_response(self, body: Mapping[str, Any]) -> OutputVerdict:
        """Apply the output rules to the model's text, then restore placeholders."""
        policy = self.guard.policy
        enforced = policy.mode == "enforce"
        self.usage = usage_of(body) or self.usage
        if self.model is None and isinstance(body.get("model"), str):
            self.model = body["model"]
        wire = self.wire
        if wire.extract_response is None or wire.withhold is None:
            # No text in the answer (embeddings): nothing to check or restore.
            self._output = OutputVerdict("allow", dict(body), enforced)
            return self._output
        slots = wire.extract_response(body)
        outcome = await self.evaluate_rules([s.text for s in slots])
        hits = outcome.all_hits
        moderation_failed = self.output_moderation_failed(outcome.moderation)

        blocked_choices: set[int] = set()
        block_messages: dict[int, str] = {}
        changes: dict[TextSlot, str] = {}
        for slot, per_text in zip(slots, outcome.hits, strict=True):
            choice = int(slot.path[1])
            blocking = [h for h in per_text if h.action == "block"]
            if blocking or moderation_failed:
                blocked_choices.add(choice)
                block_messages.setdefault(choice, self.block_message(blocking))
                continue
            text = redact_ranges(slot.text, per_text) if any(
                h.action == "redact" for h in per_text) else slot.text
            if policy.pii.restore_output:
                text = self._placeholders.restore(text)
            if text != slot.text:
                changes[slot] = text

        actions = [h.action for h in hits]
        decision: Decision = most_severe(
            *("block" if a == "block" else "redact" if a == "redact" else "warn" for a in actions),
            *(("block",) if blocked_choices else ()),
        )
        if enforced:
            new_body = replace_texts(body, changes)  # a deep copy, safe to edit below
            for choice in blocked_choices:
                wire.withhold(new_body, choice, block_messages[choice])
        else:
            new_body = dict(body)
        verdict = OutputVerdict(decision, new_body, enforced, tuple(hits), outcome.moderation)
        self._output = verdict
        return verdict

    async def evaluate_rules(self, texts: Sequence[str]) -> RulesOutcome:
        """The output rules over ``texts`` (model text, placeholders not yet restored)."""
        with self._stage("rules"):  # one stage (and span): the analysis and the matching
            analysis = await self._analyze(texts)
            outcome = RulesOutcome(tuple(self.guard.rules.match(text, analysis.spans[i], analysis.moderation)
                                         for i, text in enumerate(texts)), analysis.moderation)
        self.note_output_entities(outcome.all_hits)
        return outcome

    async def analyze_output(self, texts: Sequence[str]) -> Analysis:
        """PII detection and moderation for the output rules (the costly part of checking)."""
        with self._stage("rules"):
            return await self._analyze(texts)

    async def _analyze(self, texts: Sequence[str]) -> Analysis:
        moderate = None
        if self.guard.output_moderator is not None:
            async def moderate(texts: Sequence[str]) -> ModerationVerdict:
                with self._stage("moderation"):
                    return await self.guard.moderate_output(texts, self._moderation_key)

        return await self.guard.rules.analyze(texts, detect=self.guard.detect, moderate=moderate)

    def note_output_entities(self, hits: Sequence[RuleHit]) -> None:
        """Count the PII kinds that output rules found (for the record's ``output_entities``)."""
        for hit in hits:
            self._output_entities.update(hit.entities)

    def output_moderation_failed(self, verdict: ModerationVerdict | None) -> bool:
        """True when output moderation failed and the policy says to withhold the answer."""
        moderator = self.guard.output_moderator
        return (verdict is not None and verdict.outcome == "error"
                and moderator is not None and moderator.on_error != "allow")

    def block_message(self, blocking: Sequence[RuleHit]) -> str:
        """What a withheld answer says instead (the first blocking rule's message)."""
        if not blocking:
            return "The answer could not be checked and was withheld."
        for rule in self.guard.rules.rules:
            if rule.id == blocking[0].rule_id and rule.message:
                return rule.message
        return self.guard.policy.output.block_message

    def stream_guard(self) -> StreamGuard:
        """The guard for this call's streamed answer (chat chunks or Responses events)."""
        if self.wire.api == "responses":
            from guard.stream_responses import ResponsesStreamGuard

            return ResponsesStreamGuard(self)
        from guard.stream import StreamGuard

        return StreamGuard(self)

    def record_output(self, decision: Decision, hits: Sequence[RuleHit],
                      moderation: ModerationVerdict | None) -> None:
        """For adapters that check output piecewise (streams): what was decided overall."""
        self._output = OutputVerdict(decision, {}, self.guard.policy.mode == "enforce",
                                     tuple(hits), moderation)

    def mark_first_token(self) -> None:
        """Time to first token as the client sees it (once)."""
        if "first_token" not in self._latency:
            self._latency["first_token"] = _ms_since(self._started)
            self.trace.first_token()

    def restore(self, text: str) -> str:
        """``text`` with this call's placeholders restored (for adapters that stream)."""
        return self._placeholders.restore(text)

    def placeholders(self) -> PlaceholderMap:
        """This call's pseudonyms (for batch maps, which must outlive the call encrypted)."""
        return self._placeholders

    def use_placeholders(self, placeholders: PlaceholderMap) -> None:
        """Restore answers with ``placeholders`` (a batch result, checked hours later)."""
        self._placeholders = placeholders

    # -- the audit record --------------------------------------------------------------

    @property
    def decision(self) -> Decision:
        parts: list[Decision] = []
        if self._input is not None:
            parts.append(self._input.decision)
        if self._output is not None:
            parts.append(self._output.decision)
        return most_severe(*parts)

    def add_latency(self, stage: str, ms: float) -> None:
        """Adapters report their own stages (``upstream``, ``first_token``)."""
        self._latency[stage] = self._latency.get(stage, 0.0) + ms

    def finish(self, status: str | None = None) -> dict[str, Any]:
        """Write the call's audit record (once; later calls return the same record)."""
        if status is not None:
            self.status = status
        record = self._record()
        if not self._finished:
            self._finished = True
            self._placeholders = PlaceholderMap()  # drop the values as soon as we can
            if self._stream_open:
                notify(self.guard.observers, "stream_closed")
            # Metrics and the span's attributes come from the record itself: one source.
            # Before the record is queued, so a written record implies they are counted.
            notify(self.guard.observers, "record_finished", record, self.guard)
            self.trace.finish(record)
            self.guard.audit.emit(record)
        return record

    def _record(self) -> dict[str, Any]:
        policy = self.guard.policy
        moderation = {
            "input": _verdict_record(self._input.moderation if self._input else None,
                                     self.guard.input_moderator),
            "output": _verdict_record(self._output.moderation if self._output else None,
                                      self.guard.output_moderator),
        }
        status = self.status
        if status == "ok" and self.decision == "block" and policy.mode == "enforce":
            status = "blocked"
        latency = {k: round(v, 3) for k, v in self._latency.items()}
        latency["total"] = round(_ms_since(self._started), 3)
        record: dict[str, Any] = {
            "ts": self._ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "request_id": self.request_id,
            "principal": self.principal,
            "route": self.route,
            "model": self.model,
            "policy": {"name": policy.name, "sha256": policy.sha256},
            "mode": policy.mode,
            "decision": self.decision,
            "status": status,
            "code": self._input.code if self._input is not None else None,
            "input_entities": dict(self._input.entities) if self._input is not None else {},
            "moderation": moderation,
            "input_rules": [{"id": h.rule_id, "action": h.action, "score": round(h.score, 3)}
                            for h in (self._input.rule_hits if self._input else ())],
            "output_rules": [{"id": h.rule_id, "action": h.action}
                             for h in (self._output.rule_hits if self._output else ())],
            "output_entities": dict(self._output_entities),
            "stream": self.stream,
            "truncated": self.truncated,
            "usage": self.usage,
            "cost_usd": cost_usd(self.model, self.usage, self.guard.settings.prices),
            "latency_ms": latency,
            "error": self.error,
            "prev_hash": None,
            "hash": None,
        }
        if self.context:
            record["context"] = self.context
        if self.batch:
            record["batch"] = self.batch
        return record

    def describe(self) -> str:
        """A one-line, PII-free summary (for logs and the CLI)."""
        entities = self._input.entities if self._input is not None else {}
        return f"{self.request_id} {self.decision} {describe_counts(entities) or 'no PII'}"

    # -- context managers --------------------------------------------------------------

    async def __aenter__(self) -> Call:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._finish_on_exit(exc_type)

    def __enter__(self) -> Call:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._finish_on_exit(exc_type)

    def _finish_on_exit(self, exc_type: type[BaseException] | None) -> None:
        if exc_type is not None and self.status == "ok":
            if issubclass(exc_type, asyncio.CancelledError):
                self.status, self.truncated = "client_disconnected", True
            else:
                self.status = "error"
                self.error = self.error or exc_type.__name__
        self.finish()


def _verdict_record(verdict: ModerationVerdict | None,
                    moderator: Moderator | None) -> dict[str, Any] | None:
    if verdict is None:
        return None
    record: dict[str, Any] = {
        "provider": verdict.provider,
        "outcome": verdict.outcome,
        "flagged": list(verdict.categories),
        "top_scores": dict(sorted(((c, v) for c, v in verdict.scores.items() if v >= 0.001),
                                  key=lambda kv: -kv[1])[:5]),
        "unevaluated": list(verdict.unevaluated),
        "error": verdict.error,
        "latency_ms": round(verdict.latency_ms, 3),
    }
    if verdict.outcome == "error" and moderator is not None:
        # An outage is never a pass: say what the policy did about it.
        record["on_error"] = moderator.on_error
    if isinstance(verdict, FallbackVerdict):
        # The configured provider failed (``error``); the fallback answered instead.
        record["fallback"] = verdict.fallback
        record["failed_provider"] = verdict.failed_provider
        record["on_error"] = "local"
    return record


def _principal(key: bytes, api_key: str | None, user: str | None) -> str:
    if user:
        return f"user:{user}"
    if api_key:
        digest = hmac.new(key, api_key.encode(), hashlib.sha256).hexdigest()
        return f"key:{digest[:24]}"
    return "anonymous"


def _root(param: str) -> str:
    """The top-level field of an OpenAI-style param path (``messages[2].content`` → messages)."""
    return param.split("[", 1)[0].split(".", 1)[0]


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
