"""The audit writer: never blocks the caller, loses nothing it can avoid losing, counts the rest."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from guard.audit import AuditWriter, MemorySink


def make_record(request_id: str = "req-1", **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "ts": "2025-01-01T12:00:00.000Z",
        "request_id": request_id,
        "principal": "p-3f2a",
        "route": "/v1/chat/completions",
        "model": "gpt-4o-mini",
        "policy": {"name": "default", "sha256": "ab" * 32},
        "mode": "enforce",
        "decision": "redact",
        "status": "ok",
        "input_entities": {"PERSON": 2},
        "stream": False,
        "truncated": False,
        "usage": {"prompt_tokens": 12, "completion_tokens": 30},
        "cost_usd": 0.0000198,
        "latency_ms": {"total": 40.0, "pii": 3.0, "moderation": 5.0, "upstream": 30.0,
                       "first_token": None},
        "prev_hash": None,
        "hash": None,
    }
    record.update(changes)
    return record


class SlowSink(MemorySink):
    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        time.sleep(self.delay_s)
        super().write(records)


class BlockingSink(MemorySink):
    """Blocks its first write until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.entered.set()
        self.release.wait(10)
        super().write(records)


class FlakySink(MemorySink):
    """Fails its first ``failures`` writes, quoting the batch like a careless sink might."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"cannot store {records!r}")
        super().write(records)


class RecordingSink(MemorySink):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.closed_in: str | None = None

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.batches.append(len(records))
        super().write(records)

    def close(self) -> None:
        self.closed_in = threading.current_thread().name


@pytest.fixture
def writers() -> Iterator[list[AuditWriter]]:
    """Writers made by a test, closed after it even when it fails."""
    made: list[AuditWriter] = []
    yield made
    for writer in made:
        writer.close(timeout=1)


def test_emit_returns_at_once_while_the_sink_is_slow(writers: list[AuditWriter]) -> None:
    sink = SlowSink(delay_s=0.5)
    writer = AuditWriter(sink, batch_size=1_000)
    writers.append(writer)

    started = time.perf_counter()
    for i in range(1_000):
        writer.emit(make_record(f"req-{i}"))
    elapsed = time.perf_counter() - started

    assert elapsed < 0.5
    assert writer.flush(timeout=10)
    assert len(sink.records) == 1_000


def test_records_emitted_inside_an_event_loop_are_written(writers: list[AuditWriter]) -> None:
    sink = MemorySink()
    writer = AuditWriter(sink)
    writers.append(writer)

    async def handler(i: int) -> None:
        writer.emit(make_record(f"req-{i}"))

    async def main() -> None:
        await asyncio.gather(*(handler(i) for i in range(50)))

    asyncio.run(main())

    assert writer.flush()
    assert sorted(r["request_id"] for r in sink.records) == sorted(f"req-{i}" for i in range(50))


def test_flush_writes_everything_emitted_before_it(writers: list[AuditWriter]) -> None:
    sink = MemorySink()
    # A long interval: without flush, nothing would be written during the test.
    writer = AuditWriter(sink, flush_interval_s=60)
    writers.append(writer)
    for i in range(10):
        writer.emit(make_record(f"req-{i}"))

    assert writer.flush(timeout=5)

    assert [r["request_id"] for r in sink.records] == [f"req-{i}" for i in range(10)]
    assert writer.stats["written"] == 10
    assert writer.stats["queued"] == 0


def test_flush_reports_false_when_the_sink_cannot_keep_up(writers: list[AuditWriter]) -> None:
    sink = BlockingSink()
    writer = AuditWriter(sink)
    writers.append(writer)
    writer.emit(make_record())

    assert writer.flush(timeout=0.1) is False

    sink.release.set()
    assert writer.flush(timeout=5) is True


def test_records_are_written_in_emit_order_in_batches_of_at_most_batch_size() -> None:
    sink = RecordingSink()
    writer = AuditWriter(sink, batch_size=7)
    for i in range(50):
        writer.emit(make_record(f"req-{i}"))
    writer.close()

    assert [r["request_id"] for r in sink.records] == [f"req-{i}" for i in range(50)]
    assert max(sink.batches) <= 7


def test_close_is_idempotent_and_loses_nothing() -> None:
    sink = RecordingSink()
    writer = AuditWriter(sink, flush_interval_s=60)
    for i in range(25):
        writer.emit(make_record(f"req-{i}"))

    writer.close()
    writer.close()

    assert len(sink.records) == 25
    assert sink.closed_in == "guard-audit-writer"  # the sink is only touched by its thread
    assert writer.stats["written"] == 25
    assert writer.stats["dropped"] == 0


def test_emit_after_close_is_counted_as_dropped_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = AuditWriter(MemorySink())
    writer.close()

    with caplog.at_level(logging.WARNING, logger="guard.audit"):
        writer.emit(make_record())

    assert writer.stats["dropped"] == 1
    assert "after the writer was closed" in caplog.text


def test_full_queue_overflows_then_drops_without_blocking(
    writers: list[AuditWriter], caplog: pytest.LogCaptureFixture
) -> None:
    sink = BlockingSink()
    writer = AuditWriter(sink, max_queue=10, max_overflow=5, flush_interval_s=0)
    writers.append(writer)
    writer.emit(make_record("first"))
    assert sink.entered.wait(5)  # the writer thread is now stuck in the sink

    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="guard.audit"):
        for i in range(25):
            writer.emit(make_record(f"req-{i}"))
    elapsed = time.perf_counter() - started
    sink.release.set()

    assert elapsed < 0.5
    assert writer.flush(timeout=5)
    stats = writer.stats
    assert stats["overflowed"] == 5
    assert stats["dropped"] == 10
    assert stats["written"] == 16
    assert stats["emitted"] == stats["written"] + stats["dropped"]
    assert "overflowed" in caplog.text
    assert "dropped" in caplog.text


def test_failing_sink_is_retried_until_it_recovers_and_records_are_written(
    writers: list[AuditWriter],
) -> None:
    sink = FlakySink(failures=3)
    writer = AuditWriter(sink, max_backoff_s=0.05)
    writers.append(writer)
    for i in range(5):
        writer.emit(make_record(f"req-{i}"))

    assert writer.flush(timeout=5)

    assert [r["request_id"] for r in sink.records] == [f"req-{i}" for i in range(5)]
    stats = writer.stats
    assert stats["failed_batches"] == 3
    assert stats["written"] == 5
    assert stats["last_error"] is None


def test_sink_failure_warning_names_the_error_but_no_record_content(
    writers: list[AuditWriter], caplog: pytest.LogCaptureFixture
) -> None:
    sink = FlakySink(failures=1)
    writer = AuditWriter(sink, max_backoff_s=0.05)
    writers.append(writer)

    with caplog.at_level(logging.WARNING, logger="guard.audit"):
        writer.emit(make_record("req-secret", principal="principal-do-not-log"))
        assert writer.flush(timeout=5)

    assert "RuntimeError" in caplog.text
    assert "principal-do-not-log" not in caplog.text
    assert "req-secret" not in caplog.text


def test_close_gives_up_on_a_dead_sink_and_counts_the_loss(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = FlakySink(failures=10**9)
    writer = AuditWriter(sink, max_backoff_s=0.05)
    for i in range(3):
        writer.emit(make_record(f"req-{i}"))

    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="guard.audit"):
        writer.close(timeout=0.3)
        assert writer.flush(timeout=2)  # the thread settles the loss as it stops
    elapsed = time.perf_counter() - started

    assert elapsed < 2
    assert writer.stats["dropped"] == 3
    assert writer.stats["written"] == 0
    assert "3 records unwritten" in caplog.text


def test_values_json_cannot_hold_are_written_as_text(writers: list[AuditWriter]) -> None:
    sink = MemorySink()
    writer = AuditWriter(sink)
    writers.append(writer)
    writer.emit(make_record(cost_usd=float("nan"), context={"tags": ("a", "b"), 7: Path("x")}))

    assert writer.flush()

    (record,) = sink.records
    assert record["cost_usd"] == "nan"
    assert record["context"] == {"tags": ["a", "b"], "7": "x"}
    json.dumps(record, allow_nan=False)


def test_records_queued_at_a_clean_interpreter_exit_are_written(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    script = textwrap.dedent(f"""
        from guard.audit import AuditWriter, open_sink
        writer = AuditWriter(open_sink({f"jsonl://{path}"!r}), flush_interval_s=60)
        for i in range(100):
            writer.emit({{"request_id": f"req-{{i}}"}})
        # no close(): the atexit hook must write the queue
    """)

    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [f"req-{i}" for i in range(100)]
