"""The ``guard.request`` event: named, stripped of content, independent of the app's structlog."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

import guard.audit
from guard.audit import EVENT_NAME, AuditLogger, AuditWriter, MemorySink


def make_record(request_id: str = "req-1", **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "ts": "2025-01-01T12:00:00.000Z",
        "request_id": request_id,
        "principal": "p-3f2a",
        "route": "/v1/chat/completions",
        "model": "gpt-4o-mini",
        "policy": {"name": "default", "sha256": "ab" * 32},
        "decision": "allow",
        "status": "ok",
        "moderation": {"input": {"flagged": [], "unevaluated": ["self-harm"], "error": None}},
        "output_rules": [{"id": "no-secrets", "action": "warn"}],
    }
    record.update(changes)
    return record


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def writer(sink: MemorySink) -> Iterator[AuditWriter]:
    # Unchained: these tests are about the event the logger builds, not the hash chain.
    writer = AuditWriter(sink, chain=False)
    yield writer
    writer.close()


def emitted(logger: AuditLogger, writer: AuditWriter, sink: MemorySink,
            record: Any) -> dict[str, Any]:
    logger.emit(record)
    assert writer.flush()
    (event,) = sink.records
    return event


def test_emitted_event_is_named_guard_request(
    writer: AuditWriter, sink: MemorySink
) -> None:
    event = emitted(AuditLogger(writer), writer, sink, make_record(event="something-else"))

    assert EVENT_NAME == "guard.request"
    assert event == {**make_record(), "event": "guard.request"}


def test_forbidden_keys_are_stripped_at_any_depth_and_counted(
    writer: AuditWriter, sink: MemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    logger = AuditLogger(writer)
    record = make_record(
        messages=[{"role": "user", "content": "Call Jane Doe on 555-0100"}],
        prompt="Call Jane Doe",
        Authorization="Bearer sk-live-123",
        **{"x-api-key": "sk-live-456"},
        placeholders={"<PERSON_1>": "Jane Doe"},
        output_rules=[{"id": "no-secrets", "action": "warn", "text": "Jane Doe"}],
        context={"function": "triage", "user": "u-17", "input": "Jane Doe"},
    )

    with caplog.at_level(logging.WARNING, logger="guard.audit"):
        event = emitted(logger, writer, sink, record)

    assert event == {
        **make_record(),
        "output_rules": [{"id": "no-secrets", "action": "warn"}],
        "context": {"function": "triage", "user": "u-17"},
        "event": "guard.request",
    }
    serialized = json.dumps(event)
    assert "Jane Doe" not in serialized
    assert "sk-live" not in serialized
    assert logger.stats["stripped_keys"] == 7
    assert "Authorization" in caplog.text  # key names are reported ...
    assert "Jane" not in caplog.text and "sk-live" not in caplog.text  # ... values never


def test_moderation_verdict_on_the_input_is_kept(writer: AuditWriter, sink: MemorySink) -> None:
    logger = AuditLogger(writer)

    event = emitted(logger, writer, sink, make_record())

    assert event["moderation"] == make_record()["moderation"]
    assert logger.stats["stripped_keys"] == 0


def test_emit_never_raises_into_the_request_path(
    writer: AuditWriter, caplog: pytest.LogCaptureFixture
) -> None:
    logger = AuditLogger(writer)

    with caplog.at_level(logging.WARNING, logger="guard.audit"):
        logger.emit(["not", "a", "mapping"])  # type: ignore[arg-type]

    assert logger.stats == {"emitted": 0, "stripped_keys": 0, "errors": 1}
    assert "audit record not emitted" in caplog.text


def test_structlog_global_configuration_is_untouched(
    writer: AuditWriter, sink: MemorySink
) -> None:
    before = structlog.get_config()

    logger = AuditLogger(writer)
    logger.emit(make_record())
    assert writer.flush()

    assert structlog.get_config() == before
    assert len(sink.records) == 1


def test_the_apps_structlog_configuration_does_not_change_the_event(
    writer: AuditWriter, sink: MemorySink
) -> None:
    def drop_everything(logger: Any, method: str, event_dict: Any) -> Any:
        raise structlog.DropEvent

    saved, was_configured = structlog.get_config(), structlog.is_configured()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, drop_everything])
    structlog.contextvars.bind_contextvars(user_prompt="Jane Doe's diagnosis")
    try:
        event = emitted(AuditLogger(writer), writer, sink, make_record())
    finally:
        structlog.contextvars.clear_contextvars()
        if was_configured:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()

    assert event == {**make_record(), "event": "guard.request"}


def test_public_names_of_guard_audit_are_stable() -> None:
    assert sorted(guard.audit.__all__) == [
        "AuditLogger", "AuditSink", "AuditWriter", "EVENT_NAME", "FORBIDDEN_KEYS", "MemorySink",
        "open_sink", "read_records",
    ]
