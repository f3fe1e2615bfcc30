"""Metric labels stay a small fixed vocabulary whatever a client sends."""

from __future__ import annotations

from prometheus_client import generate_latest

from guard.ops.labels import model_label, principal_label, route_label
from guard.ops.metrics import GuardMetrics
from tests.support.audit import record


def test_routes_map_onto_known_endpoints_and_nothing_else() -> None:
    assert route_label("/v1/chat/completions") == "/v1/chat/completions"
    assert route_label("/openai/deployments/x/chat/completions") == "/v1/chat/completions"
    assert route_label("/v1/embeddings") == "/v1/embeddings"
    assert route_label("/jane.doe@example.com") == "other"
    assert route_label(None) == "other"


def test_models_are_labelled_only_when_known() -> None:
    known = ["gpt-4o", "gpt-4o-mini"]
    assert model_label("gpt-4o-mini", known) == "gpt-4o-mini"
    assert model_label("gpt-4o-mini-2024-07-18", known) == "gpt-4o-mini"
    assert model_label("gpt-4o-2024-08-06", known) == "gpt-4o"
    assert model_label("jane.doe@example.com", known) == "other"
    assert model_label("my fine-tune for Jane", known) == "other"


def test_principals_are_counted_only_when_asked_and_then_hashed() -> None:
    rec = record(1, principal="user:jane.doe@example.com")
    quiet = GuardMetrics(principals=False)
    quiet.observe_record(rec)
    assert b"guard_principal_requests_total{" not in generate_latest(quiet.registry)

    counted = GuardMetrics(principals=True)
    counted.observe_record(rec, principal_key=b"k" * 32)
    text = generate_latest(counted.registry).decode()
    label = principal_label("user:jane.doe@example.com", b"k" * 32)
    assert f'guard_principal_requests_total{{principal="{label}"}} 1.0' in text
    assert "jane" not in text
    assert label != principal_label("user:jane.doe@example.com", b"x" * 32)  # keyed
    quiet.close()
    counted.close()


def test_two_metrics_objects_in_one_process_never_clash() -> None:
    first, second = GuardMetrics(), GuardMetrics()
    first.observe_record(record(0))
    assert b"guard_requests_total" in generate_latest(first.registry)
    assert b'decision="allow"' not in generate_latest(second.registry)
    first.close()
    second.close()
