"""OpenTelemetry traces: one span per guarded call, a child span per stage.

Guard depends on ``opentelemetry-api`` only. Without an SDK every span is a no-op that
still carries the caller's trace context, so ``traceparent`` is propagated to the upstream
either way. With ``pip install "guard[otel]"`` and the standard ``OTEL_*`` variables,
``guard serve`` exports the spans (see :func:`configure_tracing`); an application that
configures its own ``TracerProvider`` gets Guard's spans in it with nothing else to do.

The tree of one proxied chat completion::

    guard.request                       decision, status, policy, entity types (no values)
    ├── guard.pii                       PII detection and pseudonymisation
    ├── guard.input_rules               only when the policy has input rules
    ├── guard.moderation                input moderation (and output moderation, if any)
    ├── chat gpt-4o-mini   (CLIENT)     the upstream call: gen_ai.* attributes
    └── guard.output_rules

Spans never hold prompt or completion text, PII values, placeholders or keys: attributes are
set only from the audit record's counts, names and ids (see :func:`request_attributes`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, MutableSequence, Sequence
from contextlib import contextmanager
from importlib import metadata
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from guard.ops.labels import route_label

log = logging.getLogger("guard.ops")

try:
    _VERSION = metadata.version("guard")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    _VERSION = "0"

_tracer = trace.get_tracer("guard", _VERSION)
"""A proxy tracer: it follows whatever provider is configured, also after import."""

_FAILED_STATUSES = frozenset({"error", "upstream_error"})
_PROPAGATION_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})


class CallTrace:
    """The spans of one call. Created by :class:`~guard.call.Call`; ends with the call."""

    def __init__(self, route: str) -> None:
        self.span: Span = _tracer.start_span(
            "guard.request", attributes={"guard.route": route_label(route)})
        self._context = trace.set_span_in_context(self.span)
        self._ended = False

    @contextmanager
    def stage(self, name: str) -> Iterator[Span]:
        """A child span ``guard.<name>`` around one stage of the pipeline."""
        with _tracer.start_as_current_span(f"guard.{name}", context=self._context,
                                           record_exception=False) as span:
            yield span

    @contextmanager
    def upstream(self, route: str, model: str | None) -> Iterator[Span]:
        """The upstream call as a CLIENT span, current inside the block (so the forwarder
        propagates it as ``traceparent``); :func:`upstream_done` adds what came back."""
        operation = _operation(route)
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": operation, "gen_ai.provider.name": "openai",
            "gen_ai.system": "openai"}
        if model:
            attributes["gen_ai.request.model"] = model
        span = _tracer.start_span(f"{operation} {model}" if model else operation,
                                  context=self._context, kind=SpanKind.CLIENT,
                                  attributes=attributes)
        with trace.use_span(span, end_on_exit=True, record_exception=False,
                            set_status_on_exception=False):
            yield span

    def first_token(self) -> None:
        self.span.add_event("guard.first_token")

    def finish(self, record: Mapping[str, Any]) -> None:
        """Set the decision on the request span from the audit record, and end it (once)."""
        if self._ended:
            return
        self._ended = True
        self.span.set_attributes(request_attributes(record))
        if record.get("status") in _FAILED_STATUSES:
            self.span.set_status(Status(StatusCode.ERROR, str(record.get("error") or "error")))
        self.span.end()


def upstream_done(span: Span, *, usage: Mapping[str, int] | None, status: int | None,
                  response_model: str | None = None) -> None:
    """GenAI semantic-convention attributes of a finished upstream call (no content)."""
    if not span.is_recording():
        return
    attributes: dict[str, AttributeValue] = {}
    if response_model:
        attributes["gen_ai.response.model"] = response_model
    if usage:
        for ours, theirs in (("prompt_tokens", "gen_ai.usage.input_tokens"),
                             ("completion_tokens", "gen_ai.usage.output_tokens")):
            if isinstance(usage.get(ours), int):
                attributes[theirs] = usage[ours]
    if status is not None:
        attributes["http.response.status_code"] = status
        if status >= 400:
            span.set_status(Status(StatusCode.ERROR, f"http_{status}"))
    span.set_attributes(attributes)


def request_attributes(record: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Span attributes of a finished call: ids, names and counts from its audit record."""
    policy = record.get("policy") or {}
    attributes: dict[str, AttributeValue] = {
        "guard.request_id": str(record.get("request_id")),
        "guard.decision": str(record.get("decision")),
        "guard.status": str(record.get("status")),
        "guard.mode": str(record.get("mode")),
        "guard.policy.name": str(policy.get("name")),
        "guard.policy.sha256": str(policy.get("sha256")),
        "guard.stream": bool(record.get("stream")),
        "guard.truncated": bool(record.get("truncated")),
    }
    if record.get("code"):
        attributes["guard.code"] = str(record["code"])
    if record.get("model"):
        attributes["gen_ai.request.model"] = str(record["model"])
    entities = record.get("input_entities") or {}
    if entities:
        attributes["guard.pii.entity_types"] = sorted(str(e) for e in entities)
        attributes["guard.pii.entities"] = int(sum(entities.values()))
    flagged = _flagged(record)
    if flagged:
        attributes["guard.moderation.flagged"] = flagged
    rules = sorted({str(h.get("id")) for key in ("input_rules", "output_rules")
                    for h in record.get(key) or ()})
    if rules:
        attributes["guard.rules"] = rules
    usage = record.get("usage") or {}
    for ours, theirs in (("prompt_tokens", "gen_ai.usage.input_tokens"),
                         ("completion_tokens", "gen_ai.usage.output_tokens")):
        if isinstance(usage.get(ours), int):
            attributes[theirs] = usage[ours]
    return attributes


def _flagged(record: Mapping[str, Any]) -> list[str]:
    moderation = record.get("moderation") or {}
    return sorted({str(c) for side in moderation.values() if isinstance(side, Mapping)
                   for c in side.get("flagged") or ()})


def _operation(route: str) -> str:
    label = route_label(route)
    return {"/v1/embeddings": "embeddings", "/v1/completions": "text_completion"}.get(
        label, "chat")


# -- propagation -----------------------------------------------------------------------


def extract_context(headers: Sequence[tuple[bytes, bytes]]) -> otel_context.Context:
    """The trace context a client sent (``traceparent``, ``tracestate``, ``baggage``)."""
    carrier = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers
               if k.decode("latin-1").lower() in _PROPAGATION_HEADERS}
    return propagate.extract(carrier)


def inject_headers(headers: MutableSequence[tuple[bytes, bytes]]) -> None:
    """Replace any propagation headers in ``headers`` with the current context's."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if not carrier:
        return
    headers[:] = [(k, v) for k, v in headers if k.lower() not in {c.encode() for c in carrier}]
    headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in carrier.items())


@contextmanager
def client_trace_context(headers: Sequence[tuple[bytes, bytes]]) -> Iterator[None]:
    """Continue the client's trace inside the block, unless a span is already active (an
    app's own OpenTelemetry middleware has done this then)."""
    if trace.get_current_span().get_span_context().is_valid:
        yield
        return
    token = otel_context.attach(extract_context(headers))
    try:
        yield
    finally:
        otel_context.detach(token)


# -- SDK set-up for guard serve ----------------------------------------------------------


def configure_tracing(env: Mapping[str, str] | None = None) -> bool:
    """Install an SDK tracer provider from the standard ``OTEL_*`` variables, if asked to.

    Does something only when the ``otel`` extra is installed, ``OTEL_SDK_DISABLED`` is not
    true, and ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``) or an
    ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set. Service name, resource attributes, sampler and
    the exporter's endpoint, headers and protocol come from the usual variables. Returns
    whether a provider was installed. Libraries never call this: applications do, at their
    edge (``guard serve`` does it in each worker).
    """
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporters = [e.strip() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()]
    if not exporters and any(env.get(k) for k in ("OTEL_EXPORTER_OTLP_ENDPOINT",
                                                   "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        exporters = ["otlp"]
    exporters = [e for e in exporters if e != "none"]
    if not exporters:
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
    except ImportError:
        log.warning("OTEL_TRACES_EXPORTER is set but the OpenTelemetry SDK is not installed; "
                    "install it with: pip install 'guard[otel]'")
        return False
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "guard"})
    provider = TracerProvider(resource=resource)
    for name in exporters:
        exporter: SpanExporter
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporter = ConsoleSpanExporter()
        elif name == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                log.warning("the OTLP exporter is not installed: pip install 'guard[otel]'")
                continue
            exporter = OTLPSpanExporter()
        else:
            log.warning("unknown OTEL_TRACES_EXPORTER %r ignored (known: otlp, console, none)",
                        name)
            continue
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True
