"""PostgreSQL stops in the middle of a load: nothing lost, nothing twice, the chain intact."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from guard.audit import AuditWriter, open_sink, read_records
from guard.audit.urls import open_store
from guard.audit.verify import verify_store
from tests.support.audit import cluster_is_ours, pg_ctl, postgres_schema, record, spool_dir

__all__ = ["spool_dir"]


def test_stopping_postgresql_mid_load_loses_and_duplicates_nothing(spool_dir: Path) -> None:
    with postgres_schema() as url:
        if not cluster_is_ours():
            pytest.skip("the PostgreSQL in use is not the one .ci/postgres.sh manages")
        writer = AuditWriter(open_sink(url), batch_size=50, flush_interval_s=0.01,
                             max_backoff_s=0.2)
        try:
            for i in range(2_000):
                if i == 600:
                    pg_ctl("kill")  # like a crash: no goodbye to the clients
                if i == 1_400:
                    assert writer.stats["spool_pending"] > 0, "the outage was noticed"
                    pg_ctl("start")
                writer.emit(record(i))
                if i % 50 == 0:
                    time.sleep(0.01)  # a load, not one burst
            assert writer.stats["dropped"] == 0
            assert writer.flush(timeout=60), writer.stats
        finally:
            pg_ctl("start")
            writer.close(timeout=30)
        stats = writer.stats
        assert stats["written"] == 2_000 and stats["dropped"] == 0
        assert stats["spooled"] > 0 and stats["spool_pending"] == 0 and stats["spool_bytes"] == 0

        stored = [r["request_id"] for r in read_records(url)]
        assert sorted(stored) == [f"req-{i:05d}" for i in range(2_000)]
        assert len(stored) == len(set(stored))
        with open_store(url) as store:
            report = verify_store(store)
        assert report.ok, report.problems
        assert [(c.rows, c.ended) for c in report.chains] == [(2_002, True)]
        assert not list(spool_dir.rglob("*.spool"))
