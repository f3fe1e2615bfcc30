"""Traces: one span per call with a child per stage, the client's trace continued, the
upstream told (traceparent), GenAI attributes on the upstream span — and no content."""

from __future__ import annotations

import contextlib
import json

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from guard.ops.tracing import configure_tracing
from guard.testing import FakeUpstream
from tests.integration.conftest import ProxyFactory
from tests.integration.test_audit_no_pii import CLIENT_KEY, PII, PROMPTS
from tests.support.ops import children, spans_fixture  # noqa: F401 - the spans fixture
from tests.support.sdk import records

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"


def sdk(base_url: str, key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30,
                         default_headers={"traceparent": TRACEPARENT})


def by_name(found: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    matches = [s for s in found if s.name == name]
    assert len(matches) == 1, [s.name for s in found]
    return matches[0]


def test_a_call_is_one_span_with_a_child_per_stage_continuing_the_client_trace(
        proxy: ProxyFactory, upstream: FakeUpstream, spans: InMemorySpanExporter) -> None:
    base_url, guard, sink = proxy()
    sdk(base_url).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hi, I'm Maria Gonzalez (maria.gonzalez@example.org)."}])
    record = records(guard, sink)[0]
    found = spans.get_finished_spans()

    root = by_name(found, "guard.request")
    assert f"{root.context.trace_id:032x}" == TRACE_ID
    assert root.parent is not None and f"{root.parent.span_id:016x}" == CLIENT_SPAN
    assert root.parent.is_remote
    names = sorted(s.name for s in children(found, root))
    assert names == sorted(["guard.pii", "guard.input_rules", "guard.moderation",
                            "chat gpt-4o-mini", "guard.rules"])
    assert all(s.context.trace_id == root.context.trace_id for s in found)

    attributes = dict(root.attributes or {})
    assert attributes["guard.request_id"] == record["request_id"]
    assert attributes["guard.decision"] == "redact" == record["decision"]
    assert attributes["guard.status"] == "ok"
    assert attributes["guard.policy.sha256"] == record["policy"]["sha256"]
    assert attributes["guard.pii.entity_types"] == ("EMAIL_ADDRESS", "PERSON")
    assert attributes["guard.route"] == "/v1/chat/completions"

    upstream_span = by_name(found, "chat gpt-4o-mini")
    assert upstream_span.kind == SpanKind.CLIENT
    gen_ai = dict(upstream_span.attributes or {})
    assert gen_ai["gen_ai.operation.name"] == "chat"
    assert gen_ai["gen_ai.request.model"] == "gpt-4o-mini"
    assert gen_ai["gen_ai.usage.input_tokens"] == record["usage"]["prompt_tokens"]
    assert gen_ai["gen_ai.usage.output_tokens"] == record["usage"]["completion_tokens"]
    assert gen_ai["http.response.status_code"] == 200

    # The upstream was told: same trace, with the upstream span as the parent.
    sent = upstream.chat_requests[-1].headers["traceparent"]
    assert sent == f"00-{TRACE_ID}-{upstream_span.context.span_id:016x}-01"


def test_a_stream_marks_its_first_token_and_reports_usage(
        proxy: ProxyFactory, upstream: FakeUpstream, spans: InMemorySpanExporter) -> None:
    base_url, guard, sink = proxy()
    stream = sdk(base_url).chat.completions.create(
        model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Say hello"}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    record = records(guard, sink)[0]
    found = spans.get_finished_spans()
    root = by_name(found, "guard.request")
    assert [e.name for e in root.events] == ["guard.first_token"]
    assert dict(root.attributes or {})["guard.stream"] is True
    upstream_span = by_name(found, "chat gpt-4o-mini")
    assert dict(upstream_span.attributes or {})["gen_ai.usage.output_tokens"] == (
        record["usage"]["completion_tokens"])


def test_blocked_and_failed_calls_say_so(proxy: ProxyFactory, upstream: FakeUpstream,
                                         spans: InMemorySpanExporter) -> None:
    base_url, guard, sink = proxy()
    with pytest.raises(openai.BadRequestError):
        sdk(base_url).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "My SSN is 536-22-7614."}])
    records(guard, sink, at_least=1)
    blocked = by_name(spans.get_finished_spans(), "guard.request")
    assert dict(blocked.attributes or {})["guard.code"] == "guard.pii"
    assert not [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    spans.clear()

    upstream.status = 500
    with pytest.raises(openai.InternalServerError):
        sdk(base_url).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}])
    records(guard, sink, at_least=2)
    found = spans.get_finished_spans()
    assert by_name(found, "guard.request").status.status_code == StatusCode.ERROR
    assert by_name(found, "chat gpt-4o-mini").status.status_code == StatusCode.ERROR


def test_no_span_holds_pii_keys_or_request_text(proxy: ProxyFactory, upstream: FakeUpstream,
                                                spans: InMemorySpanExporter) -> None:
    base_url, guard, sink = proxy()
    client = sdk(base_url, key=CLIENT_KEY)
    for prompt in PROMPTS:
        with contextlib.suppress(openai.BadRequestError):
            client.chat.completions.create(
                model="gpt-4o-mini", stream=prompt.startswith("Charge"),
                messages=[{"role": "system", "content": "Customer: Maria Gonzalez."},
                          {"role": "user", "content": prompt}])
    records(guard, sink, at_least=len(PROMPTS))
    found = spans.get_finished_spans()
    assert len([s for s in found if s.name == "guard.request"]) == len(PROMPTS)
    dumped = json.dumps([{"name": s.name, "attributes": dict(s.attributes or {}),
                          "events": [(e.name, dict(e.attributes or {})) for e in s.events],
                          "status": s.status.description, "resource": dict(s.resource.attributes)}
                         for s in found], default=str)
    assert "PERSON" in dumped and "US_SSN" in dumped  # entity types are there...
    for secret in PII:
        assert secret not in dumped, f"{secret!r} in a span"  # ...their values are not


def test_tracing_is_configured_only_when_asked() -> None:
    assert configure_tracing({}) is False
    assert configure_tracing({"OTEL_TRACES_EXPORTER": "none"}) is False
    assert configure_tracing({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}) is False
