"""Calls made through guard.wrap(client) are counted and traced like proxied ones."""

from __future__ import annotations

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from guard import Guard, MemorySink
from guard.ops import GuardMetrics
from tests.support.ops import spans_fixture  # noqa: F401 - the spans fixture
from tests.support.sdk import SdkUpstream, records


def test_wrapped_client_calls_feed_metrics_and_spans(
        guarded: tuple[Guard, MemorySink], upstream: SdkUpstream,
        spans: InMemorySpanExporter) -> None:
    guard, sink = guarded
    metrics = GuardMetrics().attach(guard)
    client = guard.wrap(openai.OpenAI(base_url=upstream.base_url, api_key="sk-app", max_retries=0))
    client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "user", "content": "I'm Maria Gonzalez (maria.gonzalez@example.org)."}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "user", "content": "My SSN is 536-22-7614."}])
    found = records(guard, sink, at_least=2)
    text = generate_latest(metrics.registry).decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    route = ("route", "/v1/chat/completions")
    assert samples[("guard_requests_total", (("decision", "redact"), route, ("status", "ok")))] == 1
    assert samples[("guard_requests_total",
                    (("decision", "block"), route, ("status", "blocked")))] == 1
    assert samples[("guard_blocks_total", (("kind", "pii"), ("reason", "US_SSN")))] == 1
    assert "Maria" not in text and "536-22" not in text
    requests = [s for s in spans.get_finished_spans() if s.name == "guard.request"]
    assert sorted(dict(s.attributes or {})["guard.request_id"] for s in requests) == sorted(
        r["request_id"] for r in found)
    metrics.close()
