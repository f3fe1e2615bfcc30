"""The audit trail's writing side: one PII-free ``guard.request`` record per call.

The engine builds a record (a plain JSON-able dict) and hands it to an
:class:`AuditLogger`, which strips forbidden keys and queues it on an :class:`AuditWriter`;
the writer's background thread writes batches to a sink chosen by URL::

    writer = AuditWriter(open_sink("sqlite:///guard-audit.db"))
    audit = AuditLogger(writer)
    audit.emit({"request_id": "r1", "decision": "redact", ...})   # never blocks on I/O
    ...
    writer.close()                                                # also done at exit
    read_records("sqlite:///guard-audit.db", limit=10)            # newest 10, oldest first

In tests, use a :class:`MemorySink` and read ``sink.records`` after ``writer.flush()``.

The writer links every record into its own hash chain (``chain``, ``seq``, ``prev_hash``,
``hash``; HMAC with ``GUARD_AUDIT_HMAC_KEY``) and, for the SQLite and PostgreSQL stores,
spools batches the store refuses to a local file and replays them when it is back. The
reading side - queries, statistics, verify, export, purge and the review page - is what
``guard audit`` runs (``python -m guard.audit.cli``).

Module map. Writing: ``sinks`` (protocol, stdout, jsonl, memory), ``sqlite`` and ``postgres``
(the stores), ``columns`` (queryable columns of a record), ``urls`` (sink URLs), ``writer``
(queue and thread), ``chain`` (hash chain), ``spool`` (the spool files), ``logger`` (the
structlog pipeline). Reading: ``store`` (filters, records, stats), ``timeparse``, ``verify``,
``export``, ``purge``, ``cli`` (``guard audit``), ``web`` (the review page).
"""

from __future__ import annotations

from guard.audit.logger import EVENT_NAME, FORBIDDEN_KEYS, AuditLogger
from guard.audit.sinks import AuditSink, MemorySink
from guard.audit.urls import open_sink, read_records
from guard.audit.writer import AuditWriter

__all__ = [
    "EVENT_NAME",
    "FORBIDDEN_KEYS",
    "AuditLogger",
    "AuditSink",
    "AuditWriter",
    "MemorySink",
    "open_sink",
    "read_records",
]
