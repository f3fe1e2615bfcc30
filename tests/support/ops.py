"""Helpers for the operations tests: scrape /metrics over HTTP, collect spans in memory."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

_EXPORTER = InMemorySpanExporter()
_installed = False


def scrape(server_url: str) -> Samples:
    """GET /metrics over real HTTP; every sample as ``(name, labels) -> value``."""
    response = httpx2.get(f"{server_url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    """The sample's value (0 when the series does not exist)."""
    return samples.get((metric, frozenset(labels.items())), 0.0)


def label_values(samples: Samples) -> list[str]:
    return [v for _, labels in samples for _, v in labels]


@pytest.fixture(name="spans")
def spans_fixture() -> Iterator[InMemorySpanExporter]:
    """An SDK tracer provider exporting to memory (installed once per process: OpenTelemetry
    allows one global provider), emptied for each test."""
    global _installed
    if not _installed:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
        _installed = True
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def children(all_spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    parent_id = parent.context.span_id if parent.context else None
    return [s for s in all_spans if s.parent is not None and s.parent.span_id == parent_id]
