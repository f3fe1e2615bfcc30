"""The spool: a store that is down loses nothing, keeps chain order and replays exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from guard.audit import AuditWriter, MemorySink
from guard.audit.errors import StoreError
from tests.support.audit import record


class SwitchableSink(MemorySink):
    """A store that can be taken down; like the real ones it ignores records it has."""

    chain_markers = True

    def __init__(self) -> None:
        super().__init__()
        self.down = threading.Event()
        self.keys: set[tuple[Any, Any]] = set()

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        if self.down.is_set():
            raise StoreError("cannot connect to audit store test: connection refused")
        fresh = [r for r in records if (r.get("chain"), r.get("seq")) not in self.keys]
        self.keys.update((r.get("chain"), r.get("seq")) for r in fresh)
        super().write(fresh)


def requests(sink: MemorySink) -> list[dict[str, Any]]:
    return [r for r in sink.records if r.get("event") == "guard.request"]


def test_batches_the_store_refuses_go_to_the_spool_and_are_replayed_in_order(
        tmp_path: Path) -> None:
    sink = SwitchableSink()
    writer = AuditWriter(sink, spool_dir=tmp_path, batch_size=10, max_backoff_s=0.05)
    for i in range(30):
        writer.emit(record(i))
    assert writer.flush()
    sink.down.set()
    for i in range(30, 80):
        writer.emit(record(i))
    assert not writer.flush(timeout=0.3)  # safe on disk, not yet in the store

    stats = writer.stats
    assert stats["spool_pending"] == 50 and stats["spooled"] == 50
    assert stats["spool_bytes"] > 0 and stats["queued"] == 0
    assert stats["emitted"] == stats["written"] + stats["spool_pending"] + stats["queued"]
    assert list(tmp_path.glob("*.spool"))

    sink.down.clear()
    assert writer.flush(timeout=5)
    writer.close()

    assert [r["request_id"] for r in requests(sink)] == [f"req-{i:05d}" for i in range(80)]
    seqs = [r["seq"] for r in sink.records]
    assert seqs == list(range(len(seqs)))  # one chain, in order, nothing twice
    assert writer.stats["spool_pending"] == 0 and writer.stats["spool_bytes"] == 0
    assert not list(tmp_path.glob("*.spool")), "a replayed spool is deleted"


def test_records_still_spooled_at_close_are_kept_for_the_next_writer(tmp_path: Path) -> None:
    sink = SwitchableSink()
    sink.down.set()
    first = AuditWriter(sink, spool_dir=tmp_path, max_backoff_s=0.05)
    for i in range(20):
        first.emit(record(i))
    first.close(timeout=0.5)
    assert first.stats["dropped"] == 0
    assert first.stats["spool_pending"] == 20

    sink.down.clear()
    second = AuditWriter(sink, spool_dir=tmp_path)
    second.emit(record(99))
    second.close()

    assert sorted(r["request_id"] for r in requests(sink)) == sorted(
        [f"req-{i:05d}" for i in range(20)] + ["req-00099"])
    assert second.stats["recovered"] == 20
    assert not list(tmp_path.glob("*.spool"))


def test_a_crash_after_spooling_is_replayed_exactly_once(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    out = tmp_path / "stored.jsonl"
    # A process spools 50 records (its store is down), half of them also reach the store
    # (a commit whose answer was lost), then dies without closing.
    script = textwrap.dedent(f"""
        import json, os
        from guard.audit import AuditWriter
        from guard.audit.errors import StoreError

        class Down:
            chain_markers = True
            def write(self, records):
                raise StoreError("down")
            def close(self):
                pass

        writer = AuditWriter(Down(), spool_dir={str(spool)!r}, max_backoff_s=60)
        for i in range(50):
            writer.emit({{"event": "guard.request", "request_id": f"req-{{i}}"}})
        writer.flush(timeout=0.5)
        spooled = [json.loads(line) for f in os.scandir({str(spool)!r})
                   if f.name.endswith(".spool") for line in open(f.path)]
        with open({str(out)!r}, "w") as f:
            for r in spooled[:26]:
                f.write(json.dumps(r) + "\\n")
        os._exit(1)
    """)
    subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    sink = SwitchableSink()
    already = [json.loads(line) for line in out.read_text().splitlines()]
    sink.write(already)

    writer = AuditWriter(sink, spool_dir=spool)
    writer.close()

    ids = [r["request_id"] for r in requests(sink)]
    assert sorted(ids) == sorted(f"req-{i}" for i in range(50))
    assert len(ids) == len(set(ids)) == 50
    assert writer.stats["recovered"] == 50  # all replayed; the store ignored what it had


def test_a_spool_held_by_a_living_writer_is_not_taken_over(tmp_path: Path) -> None:
    down = SwitchableSink()
    down.down.set()
    living = AuditWriter(down, spool_dir=tmp_path, max_backoff_s=5)
    living.emit(record(1))
    living.flush(timeout=0.3)
    assert living.stats["spool_pending"] == 1

    other = SwitchableSink()
    second = AuditWriter(other, spool_dir=tmp_path)
    second.close()

    assert requests(other) == []
    assert second.stats["recovered"] == 0
    down.down.clear()
    living.close()
    assert [r["request_id"] for r in requests(down)] == ["req-00001"]


def test_without_a_spool_directory_a_failing_store_is_retried_in_memory() -> None:
    sink = SwitchableSink()
    sink.down.set()
    writer = AuditWriter(sink, spool_dir=None, max_backoff_s=0.05)
    writer.emit(record(1))
    assert not writer.flush(timeout=0.2)
    assert writer.stats["failed_batches"] >= 1 and writer.stats["spooled"] == 0

    sink.down.clear()
    assert writer.flush(timeout=5)
    writer.close()
    assert [r["request_id"] for r in requests(sink)] == ["req-00001"]


def test_an_unwritable_spool_falls_back_to_retrying_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the spool directory should be")
    sink = SwitchableSink()
    sink.down.set()
    writer = AuditWriter(sink, spool_dir=blocker / "spool", max_backoff_s=0.05)
    writer.emit(record(1))
    assert not writer.flush(timeout=0.3)

    sink.down.clear()
    assert writer.flush(timeout=5)
    writer.close()
    assert [r["request_id"] for r in requests(sink)] == ["req-00001"]
    assert writer.stats["dropped"] == 0
